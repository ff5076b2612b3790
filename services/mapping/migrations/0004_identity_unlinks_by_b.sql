-- A page's linking reads the unlinks of its records by either side at once; the primary key
-- serves the a side, this the b side (as identity_links_by_b does for links).
CREATE INDEX identity_unlinks_by_b
    ON identity_unlinks (tenant_id, b_connection_id, b_entity, b_external_id);
