-- Tenants of the platform and the API keys that authenticate them. Keys are stored only as the
-- SHA-256 hex of the key: they are high-entropy random tokens, so a fast hash is enough and a
-- lookup by hash is the comparison.
CREATE TABLE tenants (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE api_keys (
    key_hash TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    label TEXT NOT NULL,
    created_at TEXT NOT NULL,
    revoked INTEGER NOT NULL DEFAULT 0
);

CREATE INDEX api_keys_tenant ON api_keys (tenant_id);

-- Dashboard sessions. The cookie holds a random token; only its SHA-256 hex is stored here.
CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);

CREATE INDEX sessions_expiry ON sessions (expires_at);
