-- When a run paused because the partner's request quota was used up: the time the quota
-- resets and the sync resumes from its checkpoint (whatever its schedule); NULL otherwise.
ALTER TABLE syncs ADD COLUMN resumes_at TEXT;
