-- Single-use tickets (console WebSockets, backup download links), stored as SHA-256 hashes so
-- that any control plane on this database redeems what another issued, exactly once.
-- `purpose` is `console` or `download:<backup id>`.
CREATE TABLE tickets (
    token_hash BYTEA PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    server_id BIGINT NOT NULL,
    session_id TEXT NOT NULL,
    purpose TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX tickets_by_user ON tickets (user_id);
