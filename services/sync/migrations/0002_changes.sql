-- The change log behind WatchChanges: one row per written record, numbered per tenant.
CREATE TABLE IF NOT EXISTS changes (
    tenant_id TEXT NOT NULL,
    position BIGINT NOT NULL,
    connection_id TEXT NOT NULL,
    entity TEXT NOT NULL,
    external_id TEXT NOT NULL,
    changed_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, position)
);

-- The last position handed out per tenant; incremented under the row lock of the page commit.
CREATE TABLE IF NOT EXISTS change_positions (
    tenant_id TEXT PRIMARY KEY,
    last_position BIGINT NOT NULL
);
