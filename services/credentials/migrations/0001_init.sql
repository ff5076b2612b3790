-- One row per (tenant, connection). The secret is a prost-encoded `Secret`, sealed with
-- AES-256-GCM under the master key named by key_id and bound to (tenant, connection_id, version)
-- through the associated data. A revoked row keeps its version counter (so a later put never
-- reuses a version) but loses its ciphertext.
CREATE TABLE credentials (
    tenant TEXT NOT NULL,
    connection_id TEXT NOT NULL,
    connector TEXT NOT NULL,
    kind TEXT NOT NULL,
    version BIGINT NOT NULL,
    key_id TEXT NOT NULL,
    sealed TEXT NOT NULL,
    revoked INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (tenant, connection_id)
);

-- Who did what to which connection, and how it ended. Never holds a secret value.
CREATE TABLE credential_audit (
    id TEXT PRIMARY KEY,
    at TEXT NOT NULL,
    tenant TEXT NOT NULL,
    connection_id TEXT NOT NULL,
    subject TEXT NOT NULL,
    action TEXT NOT NULL,
    outcome TEXT NOT NULL,
    run_id TEXT NOT NULL DEFAULT '',
    version BIGINT NOT NULL DEFAULT 0
);

CREATE INDEX credential_audit_by_connection ON credential_audit (tenant, connection_id, at);
