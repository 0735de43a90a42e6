-- What happened to an account and its servers: who did it, from where, when. Kept when a server
-- is deleted (its id stays a number); goes with the account.
CREATE TABLE activity (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    -- The account it concerns (an admin's action on someone's server concerns the owner).
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- Who did it, when not that account's owner (an admin).
    actor_id INTEGER,
    server_id INTEGER,
    action TEXT NOT NULL,
    address TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX activity_by_user ON activity (user_id, id);
CREATE INDEX activity_by_server ON activity (server_id, id);
