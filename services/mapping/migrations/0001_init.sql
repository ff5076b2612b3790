-- Tenant overrides of connector mapping specs. Every save is a new version; the newest applies.
CREATE TABLE tenant_overrides (
    tenant_id TEXT NOT NULL,
    connector TEXT NOT NULL,
    entity TEXT NOT NULL,
    direction TEXT NOT NULL,
    version BIGINT NOT NULL,
    yaml TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, connector, entity, direction, version)
);
