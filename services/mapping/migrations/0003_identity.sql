-- Identity across systems: the person records (candidates, workers, parsed resumes) of sync's
-- store are linked to, why, and which links people took apart.

-- One row per record ever resolved, with what it is matched on.
CREATE TABLE identity_records (
    tenant_id TEXT NOT NULL,
    connection_id TEXT NOT NULL,
    entity TEXT NOT NULL,
    external_id TEXT NOT NULL,
    connector TEXT NOT NULL,
    person_id TEXT NOT NULL,
    email_key TEXT NOT NULL,
    phone_key TEXT NOT NULL,
    display_name TEXT NOT NULL,
    first_seen_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, connection_id, entity, external_id)
);
CREATE INDEX identity_records_by_email ON identity_records (tenant_id, email_key);
CREATE INDEX identity_records_by_phone ON identity_records (tenant_id, phone_key);
CREATE INDEX identity_records_by_person ON identity_records (tenant_id, person_id);
CREATE INDEX identity_records_by_partner_id
    ON identity_records (tenant_id, connector, entity, external_id);

-- The ids of other systems each record carries.
CREATE TABLE identity_references (
    tenant_id TEXT NOT NULL,
    connection_id TEXT NOT NULL,
    entity TEXT NOT NULL,
    external_id TEXT NOT NULL,
    ref_connector TEXT NOT NULL,
    ref_entity TEXT NOT NULL,
    ref_external_id TEXT NOT NULL,
    PRIMARY KEY (tenant_id, connection_id, entity, external_id, ref_connector, ref_entity,
                 ref_external_id)
);
CREATE INDEX identity_references_by_target
    ON identity_references (tenant_id, ref_connector, ref_entity, ref_external_id);

-- Why two records are one person: one row per pair and rule, the pair ordered (a < b).
CREATE TABLE identity_links (
    tenant_id TEXT NOT NULL,
    a_connection_id TEXT NOT NULL,
    a_entity TEXT NOT NULL,
    a_external_id TEXT NOT NULL,
    b_connection_id TEXT NOT NULL,
    b_entity TEXT NOT NULL,
    b_external_id TEXT NOT NULL,
    rule TEXT NOT NULL,
    link_value TEXT NOT NULL,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    PRIMARY KEY (tenant_id, a_connection_id, a_entity, a_external_id, b_connection_id, b_entity,
                 b_external_id, rule)
);
CREATE INDEX identity_links_by_b
    ON identity_links (tenant_id, b_connection_id, b_entity, b_external_id);

-- Pairs taken apart by hand: the rule named never links that pair again.
CREATE TABLE identity_unlinks (
    tenant_id TEXT NOT NULL,
    a_connection_id TEXT NOT NULL,
    a_entity TEXT NOT NULL,
    a_external_id TEXT NOT NULL,
    b_connection_id TEXT NOT NULL,
    b_entity TEXT NOT NULL,
    b_external_id TEXT NOT NULL,
    rule TEXT NOT NULL,
    link_value TEXT NOT NULL,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    PRIMARY KEY (tenant_id, a_connection_id, a_entity, a_external_id, b_connection_id, b_entity,
                 b_external_id, rule)
);

-- One row per tenant, updated first in every identity transaction: it serialises the
-- tenant's linking across replicas (PostgreSQL holds the row lock until commit).
CREATE TABLE identity_tenants (
    tenant_id TEXT PRIMARY KEY,
    changes BIGINT NOT NULL
);
