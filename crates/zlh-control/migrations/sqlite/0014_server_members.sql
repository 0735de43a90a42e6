-- Accounts a server's owner invited, and what each may do there (a comma-separated list of
-- `console`, `power`, `files`, `backups`, `ide`, `schedules`). Goes with the server or the
-- account.
CREATE TABLE server_members (
    server_id INTEGER NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    permissions TEXT NOT NULL,
    added_at INTEGER NOT NULL,
    PRIMARY KEY (server_id, user_id)
);
CREATE INDEX server_members_by_user ON server_members (user_id);
