-- Addresses a server's owner invited, and what the account with each may do there (a
-- comma-separated list of `console`, `power`, `files`, `backups`, `ide`, `schedules`). Keyed by
-- address, not account: inviting says nothing about whether an account uses the address, and
-- the invitation holds for whoever proves they own it. Goes with the server.
CREATE TABLE server_members (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    server_id INTEGER NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    email TEXT NOT NULL COLLATE NOCASE,
    permissions TEXT NOT NULL,
    added_at INTEGER NOT NULL,
    UNIQUE (server_id, email)
);
CREATE INDEX server_members_by_email ON server_members (email);
