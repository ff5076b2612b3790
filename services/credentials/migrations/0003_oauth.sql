-- OAuth2 tokens the service fetched or was given for a connection: a prost-encoded TokenSet
-- (access token, type, refresh token) sealed under the tenant's data key (key_id) and bound to
-- (tenant, connection_id + '#oauth', generation). The access token's expiry is kept in clear
-- (epoch seconds) so a lease can tell whether to refresh without decrypting. `fence` is the
-- fencing token of the refresh lease that last wrote the row: a writer with an older lease
-- cannot overwrite a newer one. `state` is 'ok' or 'rejected' (invalid_grant, revoked
-- consent: the connection needs a reconnect); `failures` counts consecutive transient refresh
-- failures and `cool_until` (epoch seconds) stops refresh storms.
CREATE TABLE oauth_tokens (
    tenant TEXT NOT NULL,
    connection_id TEXT NOT NULL,
    credential_version BIGINT NOT NULL,
    generation BIGINT NOT NULL,
    key_id TEXT NOT NULL,
    sealed TEXT NOT NULL,
    access_expires_at BIGINT NOT NULL,
    fence BIGINT NOT NULL,
    state TEXT NOT NULL,
    failures BIGINT NOT NULL,
    cool_until BIGINT NOT NULL,
    last_error TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (tenant, connection_id)
);

-- Authorization code connects in flight, by the SHA-256 of their single-use `state`. `sealed`
-- holds the client and the PKCE verifier under the tenant's data key.
CREATE TABLE oauth_pending (
    state_hash TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    connection_id TEXT NOT NULL,
    connector TEXT NOT NULL,
    key_id TEXT NOT NULL,
    sealed TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    created_at TEXT NOT NULL
);
