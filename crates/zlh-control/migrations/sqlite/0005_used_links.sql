-- IDE links already opened (their `jti`), kept until they expire: a link is single-use across
-- control-plane restarts too.
CREATE TABLE used_links (
    jti TEXT PRIMARY KEY,
    expires_at INTEGER NOT NULL
);
