-- Records whose content hash is not of the protobuf scheme (`pb:`, see `rehash.rs`): a page's
-- commit compares those by content. Partial, so it holds only them: once every record is
-- rehashed it is empty, costs nothing to keep, and one probe of it tells a commit that there
-- is nothing to compare (the query repeats this WHERE word for word, so both SQLite and
-- PostgreSQL can use the index).
CREATE INDEX IF NOT EXISTS records_hashed_before_pb
    ON records (tenant_id, connection_id, entity) WHERE content_hash NOT LIKE 'pb:%';
