-- The highest fencing token granted per connection. A run claims its lease's token here when
-- it starts, and every page it commits checks, inside the page's transaction, that its token
-- is still the connection's: a run whose lease another replica took over cannot commit. It is
-- also where lease tokens are re-seeded from when Redis restarts empty.
CREATE TABLE IF NOT EXISTS run_fences (
    tenant_id TEXT NOT NULL,
    connection_id TEXT NOT NULL,
    fencing_token BIGINT NOT NULL,
    holder TEXT NOT NULL,
    claimed_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, connection_id)
);
