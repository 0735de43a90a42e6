-- Accounts, sessions and servers. Times are milliseconds since the Unix epoch.

CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    email TEXT NOT NULL UNIQUE COLLATE NOCASE,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('user', 'admin')),
    created_at INTEGER NOT NULL,
    suspended_at INTEGER
);

-- One sign-in: its refresh tokens rotate, its access tokens name it (`sid`), and revoking it
-- ends both at once.
CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE INDEX sessions_by_user ON sessions (user_id);

-- Refresh tokens, stored as SHA-256 hashes. A token is used once; presenting a used token again
-- revokes its whole session.
CREATE TABLE refresh_tokens (
    token_hash BLOB PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    expires_at INTEGER NOT NULL,
    used_at INTEGER
);
CREATE INDEX refresh_tokens_by_session ON refresh_tokens (session_id);

-- Password reset tokens, stored as SHA-256 hashes, single-use and expiring.
CREATE TABLE password_resets (
    token_hash BLOB PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_at INTEGER NOT NULL,
    used_at INTEGER
);

CREATE TABLE servers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    owner_id INTEGER NOT NULL REFERENCES users (id),
    name TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('game', 'dev')),
    template TEXT,
    runtime TEXT,
    runtime_version TEXT,
    enable_code_server INTEGER NOT NULL DEFAULT 0,
    lifecycle TEXT NOT NULL CHECK (lifecycle IN ('provisioning', 'ready', 'deleting')),
    driver TEXT NOT NULL,
    -- Where the agent listens and its bearer secret: backend-only, never sent to a browser.
    agent_url TEXT NOT NULL DEFAULT '',
    agent_secret TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL
);
CREATE INDEX servers_by_owner ON servers (owner_id);

-- Server ids start at 101, like the original platform's container ids.
INSERT INTO sqlite_sequence (name, seq) VALUES ('servers', 100);
