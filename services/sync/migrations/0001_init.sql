-- Sync definitions, one per connection of a tenant.
CREATE TABLE IF NOT EXISTS syncs (
    tenant_id TEXT NOT NULL,
    connection_id TEXT NOT NULL,
    connector TEXT NOT NULL,
    settings_json TEXT NOT NULL,
    streams_json TEXT NOT NULL,
    interval_seconds BIGINT NOT NULL,
    paused INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    last_sync_at TEXT,
    next_run_at TEXT,
    PRIMARY KEY (tenant_id, connection_id)
);

-- Where each stream resumes: written in the same transaction as the page it follows.
CREATE TABLE IF NOT EXISTS checkpoints (
    tenant_id TEXT NOT NULL,
    connection_id TEXT NOT NULL,
    stream TEXT NOT NULL,
    checkpoint TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, connection_id, stream)
);

CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    connection_id TEXT NOT NULL,
    state TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    error TEXT,
    progress_json TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_by_connection ON runs (tenant_id, connection_id, started_at);

-- The canonical record store. content_hash lets an unchanged record skip its write.
CREATE TABLE IF NOT EXISTS records (
    tenant_id TEXT NOT NULL,
    connection_id TEXT NOT NULL,
    entity TEXT NOT NULL,
    external_id TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    body_json TEXT NOT NULL,
    custom_fields_json TEXT NOT NULL,
    raw_payload_json TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, connection_id, entity, external_id)
);

-- Records that could not be accepted or mapped, with the reason, so nothing is lost.
CREATE TABLE IF NOT EXISTS quarantine (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    connection_id TEXT NOT NULL,
    run_id TEXT NOT NULL,
    stream TEXT NOT NULL,
    external_id TEXT NOT NULL,
    payload_json TEXT NOT NULL,
    reason TEXT NOT NULL,
    field_path TEXT NOT NULL,
    quarantined_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS quarantine_by_connection ON quarantine (tenant_id, connection_id, id);
