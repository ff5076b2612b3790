-- Two-way sync: the outbox of writes to partners, each connection's field ownership and
-- conflict policy, and the conflicts they raise.

-- One row per push. The idempotency key is unique per connection, so a retried PushRecord
-- finds the row it created instead of writing again.
CREATE TABLE IF NOT EXISTS outbox (
    push_id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    connection_id TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    entity TEXT NOT NULL,
    -- What the caller asked for, to tell a retry (same request) from a reused key.
    request_json TEXT NOT NULL,
    -- The canonical fields to write, as JSON; partner-owned ones are left out of updates.
    record_json TEXT NOT NULL,
    skipped_fields_json TEXT NOT NULL,
    -- The partner's id: the record an update targets, or the one a create made ('' before).
    external_id TEXT NOT NULL,
    is_create INTEGER NOT NULL,
    -- 'caller', or 'conflict' for a write that restores values the platform won.
    origin TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    -- An attempt may have reached the partner without an answer.
    maybe_sent INTEGER NOT NULL,
    next_attempt_at TEXT NOT NULL,
    claimed_by TEXT,
    claimed_until TEXT,
    error TEXT,
    error_reason TEXT,
    -- The canonical fields of the partner's answer, for recognising the write when it comes back.
    answer_fields_json TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    delivered_at TEXT,
    -- When a read brought the write back; until then its values count as ours.
    echo_seen_at TEXT,
    UNIQUE (tenant_id, connection_id, idempotency_key)
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (state, next_attempt_at);
CREATE INDEX IF NOT EXISTS outbox_by_record ON outbox (tenant_id, connection_id, entity, external_id);

CREATE TABLE IF NOT EXISTS two_way_policies (
    tenant_id TEXT NOT NULL,
    connection_id TEXT NOT NULL,
    policy_json TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, connection_id)
);

CREATE TABLE IF NOT EXISTS conflicts (
    conflict_id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    connection_id TEXT NOT NULL,
    entity TEXT NOT NULL,
    external_id TEXT NOT NULL,
    fields_json TEXT NOT NULL,
    policy TEXT NOT NULL,
    state TEXT NOT NULL,
    resolution TEXT NOT NULL,
    reason TEXT NOT NULL,
    push_id TEXT NOT NULL,
    corrective_push_id TEXT NOT NULL,
    detected_at TEXT NOT NULL,
    resolved_at TEXT
);
CREATE INDEX IF NOT EXISTS conflicts_by_connection ON conflicts (tenant_id, connection_id, conflict_id);
