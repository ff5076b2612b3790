-- Issue #4: OAuth2 authorization code connects in flight, keyed by the SHA-256 hex of their
-- `state` (a bearer secret, never stored as is). The partner's redirect back carries no session
-- cookie (SameSite=Strict), so the state is what names the tenant at the callback.
CREATE TABLE oauth_connects (
    state_hash TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    connection_id TEXT NOT NULL,
    connector TEXT NOT NULL,
    settings_json TEXT NOT NULL,
    authorize_url TEXT NOT NULL,
    -- 1 when the connection exists already and only its consent is renewed.
    reconnect INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
);

-- Where each OAuth-connected integration sends its customer to consent again (reconnect).
CREATE TABLE oauth_integrations (
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    connection_id TEXT NOT NULL,
    connector TEXT NOT NULL,
    authorize_url TEXT NOT NULL,
    PRIMARY KEY (tenant_id, connection_id)
);
