-- Servers' schedules: a cron expression (UTC) and steps (JSON), run by the control plane.
-- `next_run_at` is when it falls due next (NULL while disabled); moving it forward claims a run.
CREATE TABLE schedules (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    server_id INTEGER NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    cron TEXT NOT NULL,
    enabled INTEGER NOT NULL,
    only_when_running INTEGER NOT NULL,
    steps TEXT NOT NULL,
    next_run_at INTEGER,
    created_at INTEGER NOT NULL
);
CREATE INDEX schedules_by_server ON schedules (server_id);
CREATE INDEX schedules_due ON schedules (next_run_at) WHERE next_run_at IS NOT NULL;

-- Their latest runs (older ones are dropped as new ones start).
CREATE TABLE schedule_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    schedule_id INTEGER NOT NULL REFERENCES schedules (id) ON DELETE CASCADE,
    started_at INTEGER NOT NULL,
    finished_at INTEGER,
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX schedule_runs_by_schedule ON schedule_runs (schedule_id, id);
