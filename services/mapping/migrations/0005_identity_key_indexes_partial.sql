-- The e-mail and phone indexes only serve the search for records sharing a key, and an empty key
-- (a record without an address, or with a number that is not valid) is never searched: a
-- record lacking one no longer writes an entry for it. Queries on them name `<> ''` so that
-- both SQLite and PostgreSQL can prove the partial index applies.
DROP INDEX identity_records_by_email;
DROP INDEX identity_records_by_phone;
CREATE INDEX identity_records_by_email ON identity_records (tenant_id, email_key)
    WHERE email_key <> '';
CREATE INDEX identity_records_by_phone ON identity_records (tenant_id, phone_key)
    WHERE phone_key <> '';
