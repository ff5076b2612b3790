-- A sync runs every interval_seconds, or at the occurrences of a cron expression (UTC), or
-- only when triggered; empty means no cron.
ALTER TABLE syncs ADD COLUMN cron TEXT NOT NULL DEFAULT '';
