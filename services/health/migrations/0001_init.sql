-- The current state of each integration (one connection of one tenant). Empty text means
-- "never": no run yet, no heartbeat yet. `revision` guards read-modify-write updates.
CREATE TABLE integration_state (
    tenant TEXT NOT NULL,
    connection_id TEXT NOT NULL,
    connector TEXT NOT NULL,
    last_outcome_kind TEXT NOT NULL DEFAULT '',
    last_outcome_reason TEXT NOT NULL DEFAULT '',
    last_outcome_at TEXT NOT NULL DEFAULT '',
    last_records_quarantined BIGINT NOT NULL DEFAULT 0,
    last_success_at TEXT NOT NULL DEFAULT '',
    consecutive_failures BIGINT NOT NULL DEFAULT 0,
    last_heartbeat_at TEXT NOT NULL DEFAULT '',
    heartbeat_interval_seconds BIGINT NOT NULL DEFAULT 0,
    paused INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL,
    status_reason TEXT NOT NULL,
    -- When the status last changed, not when it was last computed.
    status_since TEXT NOT NULL,
    revision BIGINT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (tenant, connection_id)
);

-- Every reported run, for uptime and incident history (issue #7). A run reported twice is
-- stored once.
CREATE TABLE run_outcomes (
    tenant TEXT NOT NULL,
    connection_id TEXT NOT NULL,
    run_id TEXT NOT NULL,
    connector TEXT NOT NULL,
    kind TEXT NOT NULL,
    reason TEXT NOT NULL,
    records_written BIGINT NOT NULL,
    records_quarantined BIGINT NOT NULL,
    finished_at TEXT NOT NULL,
    reported_at TEXT NOT NULL,
    PRIMARY KEY (tenant, connection_id, run_id)
);

CREATE INDEX run_outcomes_by_time ON run_outcomes (tenant, connection_id, finished_at);
