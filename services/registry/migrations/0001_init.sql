-- The latest manifest of every connector that ever registered.
CREATE TABLE connectors (
    name TEXT PRIMARY KEY,
    version TEXT NOT NULL,
    category TEXT NOT NULL,
    -- prost-encoded plugboard.registry.v1.ConnectorManifest, base64 text.
    manifest TEXT NOT NULL,
    first_registered_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- Every instance that registered. An instance is live while gone = 0 and its last heartbeat is
-- younger than the liveness TTL; the reaper sets gone = 1 once it is not.
CREATE TABLE instances (
    instance_id TEXT PRIMARY KEY,
    connector TEXT NOT NULL,
    version TEXT NOT NULL,
    address TEXT NOT NULL,
    registered_at TEXT NOT NULL,
    last_heartbeat_at TEXT NOT NULL,
    gone INTEGER NOT NULL DEFAULT 0
);

CREATE INDEX instances_by_connector ON instances (connector, gone, last_heartbeat_at);
CREATE INDEX instances_by_liveness ON instances (gone, last_heartbeat_at);
