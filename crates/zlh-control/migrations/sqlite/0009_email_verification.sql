-- People who register themselves prove their address before they may sign in. Accounts made
-- before this existed, or by an operator, count as verified.
ALTER TABLE users ADD COLUMN email_verified_at INTEGER;
UPDATE users SET email_verified_at = created_at;

-- Links that prove an address: only a SHA-256 of each is kept, one live link per account.
CREATE TABLE email_verifications (
    token_hash BLOB PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_at INTEGER NOT NULL
);
