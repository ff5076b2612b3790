-- Issue #7: one webhook per tenant, told of every status change. The signing secret is kept to
-- sign deliveries; it is shown to the tenant once, when the webhook is registered.
CREATE TABLE webhooks (
    tenant TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    signing_secret TEXT NOT NULL,
    created_at TEXT NOT NULL
);
