-- What a node may hand out in all: the sum of its servers' memory and disk limits stays within
-- these (MiB; 0: not checked).
ALTER TABLE nodes ADD COLUMN memory_mb INTEGER NOT NULL DEFAULT 0;
ALTER TABLE nodes ADD COLUMN disk_mb INTEGER NOT NULL DEFAULT 0;
