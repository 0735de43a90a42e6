-- Two-factor sign-in (TOTP). The secret is set while enrolling and kept once confirmed
-- (`totp_enabled_at`); `totp_last_step` is the newest time step a code was accepted for, so
-- each code works once.
ALTER TABLE users ADD COLUMN totp_secret BLOB;
ALTER TABLE users ADD COLUMN totp_enabled_at INTEGER;
ALTER TABLE users ADD COLUMN totp_last_step INTEGER;

-- Single-use codes for a lost authenticator: only a SHA-256 of each is kept.
CREATE TABLE recovery_codes (
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash BLOB NOT NULL,
    used_at INTEGER,
    PRIMARY KEY (user_id, code_hash)
);

-- Host-wide settings an admin changes while the host runs.
CREATE TABLE settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
