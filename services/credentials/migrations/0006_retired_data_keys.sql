-- Issue #4: per-tenant data key rotation. `data_keys` keeps each tenant's current data key; a
-- rotation moves the old one here while the tenant's secrets are re-sealed under the new one,
-- and deletes it once no secret, token or pending connect is sealed under it any more. Rows
-- here are wrapped by the master key like current ones, and a master key rotation re-wraps
-- them too.
CREATE TABLE retired_data_keys (
    tenant TEXT NOT NULL,
    id TEXT NOT NULL,
    master_key_id TEXT NOT NULL,
    wrapped TEXT NOT NULL,
    created_at TEXT NOT NULL,
    retired_at TEXT NOT NULL,
    rewrapped_at TEXT NOT NULL,
    PRIMARY KEY (tenant, id)
);
