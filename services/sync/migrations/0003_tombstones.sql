-- Records the partner no longer has, found by a complete read, stay as tombstones.
ALTER TABLE records ADD COLUMN deleted_at TEXT;

-- A change can be a deletion.
ALTER TABLE changes ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;
