-- Connections that receive partner webhooks at /webhooks/{connector}/{connection_id}. The
-- tenant of a delivery is the one registered here, never anything in the delivery.
CREATE TABLE webhook_endpoints (
    connection_id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    connector TEXT NOT NULL,
    created_at TEXT NOT NULL
);
