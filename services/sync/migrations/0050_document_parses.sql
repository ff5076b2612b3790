-- Documents parsed for a tenant by a parser connection, keyed by the SHA-256 of their content,
-- so the same document is parsed (and paid for) once. `state` is parsing (claimed by a caller
-- until `claimed_until`), parsed, or quarantined (the parse did not map; it is kept in
-- `raw_payload_json` and mapped again on the next call). The cost is what the partner charged
-- for the one parse, in millionths of `cost_currency`.
CREATE TABLE IF NOT EXISTS document_parses (
    tenant_id TEXT NOT NULL,
    connection_id TEXT NOT NULL,
    content_sha256 TEXT NOT NULL,
    connector TEXT NOT NULL,
    document_type TEXT NOT NULL,
    file_name TEXT NOT NULL,
    state TEXT NOT NULL,
    claimed_until TEXT NOT NULL,
    document_id TEXT NOT NULL DEFAULT '',
    entities_json TEXT NOT NULL DEFAULT '[]',
    raw_payload_json TEXT NOT NULL DEFAULT '',
    cost_micros BIGINT NOT NULL DEFAULT 0,
    cost_currency TEXT NOT NULL DEFAULT '',
    reuses BIGINT NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    parsed_at TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (tenant_id, connection_id, content_sha256)
);
CREATE INDEX IF NOT EXISTS document_parses_by_time ON document_parses (tenant_id, created_at);
