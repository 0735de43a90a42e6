-- Where a dev server's code-server listens (host:port), for the IDE proxy. Backend-only, like
-- the agent's address.
ALTER TABLE servers ADD COLUMN ide_upstream TEXT NOT NULL DEFAULT '';
