-- State every control plane on this database shares (several replicas behind a load balancer).

-- Token signing keys: the first control plane to start stores them, every replica uses them.
CREATE TABLE signing_keys (
    name TEXT PRIMARY KEY,
    key TEXT NOT NULL
);

-- Failed guesses (sign-ins, password checks, reset requests) by throttling key, so a guesser
-- is slowed the same whichever replica it reaches.
CREATE TABLE guess_failures (
    key TEXT NOT NULL,
    at_ms BIGINT NOT NULL
);
CREATE INDEX guess_failures_by_key ON guess_failures (key, at_ms);

-- Live replicas: each beats every quarter poll interval; one silent for an interval is gone.
CREATE TABLE replicas (
    id TEXT PRIMARY KEY,
    joined_at_ms BIGINT NOT NULL,
    beat_at_ms BIGINT NOT NULL
);

-- The last status of each server, written by the replica that polls it (JSON), so any replica
-- answers for every server.
CREATE TABLE server_status (
    server_id BIGINT PRIMARY KEY,
    status TEXT NOT NULL,
    recorded_at_ms BIGINT NOT NULL
);

-- Counters replicas follow (`access`: bumped whenever someone's access narrows or ends, so
-- live consoles and IDE sessions on every replica look again).
CREATE TABLE generations (
    name TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);

-- The replica creating, deleting or installing a server (its work is taken over, or failed, if it dies), and the one
-- running a schedule's run.
ALTER TABLE servers ADD COLUMN replica TEXT;
ALTER TABLE schedule_runs ADD COLUMN replica TEXT;
