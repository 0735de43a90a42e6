-- Single-use tickets (console WebSockets, backup download links), stored as SHA-256 hashes so
-- that any control plane on this database redeems what another issued, exactly once.
-- `purpose` is `console` or `download:<backup id>`.
CREATE TABLE tickets (
    token_hash BLOB PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    server_id INTEGER NOT NULL,
    session_id TEXT NOT NULL,
    purpose TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX tickets_by_user ON tickets (user_id);
