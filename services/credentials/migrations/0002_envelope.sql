-- Envelope encryption: one random data key per tenant, stored wrapped (AES-256-GCM) by the
-- master key named by master_key_id, with (tenant, id) as associated data. Rotating the master
-- key rewrites `wrapped` and `master_key_id` here and never touches a secret's ciphertext.
CREATE TABLE data_keys (
    tenant TEXT NOT NULL,
    id TEXT NOT NULL,
    master_key_id TEXT NOT NULL,
    wrapped TEXT NOT NULL,
    created_at TEXT NOT NULL,
    rewrapped_at TEXT NOT NULL,
    PRIMARY KEY (tenant)
);

-- How a credential row is sealed: 'master' (rows from before this migration: sealed directly by
-- the master key named by key_id) or 'data_key' (sealed by the tenant's data key whose id is
-- key_id). The service migrates 'master' rows to 'data_key' at start.
ALTER TABLE credentials ADD COLUMN sealed_by TEXT NOT NULL DEFAULT 'master';
