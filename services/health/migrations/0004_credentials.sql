-- Issue #4: what the credentials service reported about the connection's access (rejected or
-- valid, with the partner's reason), as JSON; see rules::CredentialFacts.
ALTER TABLE integration_state ADD COLUMN credential_json TEXT NOT NULL DEFAULT '{}';
