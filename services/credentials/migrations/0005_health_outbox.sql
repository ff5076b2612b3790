-- Issue #4: changes of a connection's access condition (rejected by the partner, valid again)
-- waiting to be reported to the health service. Written in the transaction that makes the
-- change, so each change is reported, and deleted once health has taken it.
CREATE TABLE health_outbox (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    connection_id TEXT NOT NULL,
    connector TEXT NOT NULL,
    condition TEXT NOT NULL,
    reason TEXT NOT NULL,
    at TEXT NOT NULL
);
