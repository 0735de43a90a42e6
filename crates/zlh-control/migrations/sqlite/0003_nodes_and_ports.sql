-- The machines servers run on (today one: the node this control plane drives) and the game
-- ports each has handed out. More nodes are more rows; a port is never on two servers of a node.
CREATE TABLE nodes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    -- The address players connect to.
    public_address TEXT NOT NULL,
    first_port INTEGER NOT NULL,
    last_port INTEGER NOT NULL
);

CREATE TABLE port_allocations (
    node_id INTEGER NOT NULL REFERENCES nodes (id),
    port INTEGER NOT NULL,
    server_id INTEGER NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    -- The template's name for it (`game`, `query`) and its transport.
    name TEXT NOT NULL,
    protocol TEXT NOT NULL CHECK (protocol IN ('tcp', 'udp', 'both')),
    -- Its place in the template's list: the first is the game's main port.
    position INTEGER NOT NULL,
    PRIMARY KEY (node_id, port)
);
CREATE INDEX port_allocations_by_server ON port_allocations (server_id);

ALTER TABLE servers ADD COLUMN node_id INTEGER REFERENCES nodes (id);
