-- Issue #7: a session remembers the API key that opened it, so revoking the key ends it.
-- Sessions opened before this cannot be tied to a key; they end now (a new sign-in).
DELETE FROM sessions;
ALTER TABLE sessions ADD COLUMN key_hash TEXT NOT NULL DEFAULT '';
CREATE INDEX sessions_by_key ON sessions (key_hash);
