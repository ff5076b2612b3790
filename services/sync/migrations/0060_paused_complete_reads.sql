-- A complete read (a full refresh, or a stream's first read) that a used-up partner quota
-- paused: the ids it had committed, so the run that resumes it can still tell what the partner
-- no longer has. `checkpoint` is the stream's checkpoint when it paused; the state holds only
-- while the stream's checkpoint is still that. `from_start` marks a stream a paused full
-- refresh had not reached yet: the run that resumes it reads that stream from the start.
CREATE TABLE IF NOT EXISTS paused_complete_reads (
    tenant_id TEXT NOT NULL,
    connection_id TEXT NOT NULL,
    stream TEXT NOT NULL,
    checkpoint TEXT NOT NULL,
    from_start BIGINT NOT NULL DEFAULT 0,
    seen_json TEXT NOT NULL DEFAULT '[]',
    paused_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, connection_id, stream)
);
