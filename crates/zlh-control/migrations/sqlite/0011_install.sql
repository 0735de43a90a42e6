-- A template's install step: 'installing' while it runs, 'failed' (with why) until it is
-- retried; NULL once it succeeded or when there is none.
ALTER TABLE servers ADD COLUMN install_state TEXT;
ALTER TABLE servers ADD COLUMN install_message TEXT;
