-- Whether the newest version of each tenant override fits its connector's newest spec, and the
-- connector spec it is applied over meanwhile: the newest it fits, so a connector upgrade that
-- breaks an override never breaks the tenant's syncs.
CREATE TABLE override_checks (
    tenant_id TEXT NOT NULL,
    connector TEXT NOT NULL,
    entity TEXT NOT NULL,
    direction TEXT NOT NULL,
    override_version BIGINT NOT NULL,
    -- The connector version checked last, and what was wrong ('[]' when the override fits).
    checked_connector_version TEXT NOT NULL,
    problems_json TEXT NOT NULL,
    -- The connector version (and its spec file) the override is applied over; '' when it fits
    -- no version this service has seen.
    active_connector_version TEXT NOT NULL,
    active_spec_yaml TEXT NOT NULL,
    checked_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, connector, entity, direction)
);
