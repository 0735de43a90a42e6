-- Templates admins imported or changed through the API: the template file's text, or NULL for
-- a removed template (hiding a built-in one or a file of the templates directory).
CREATE TABLE templates (
    name TEXT PRIMARY KEY,
    source TEXT,
    updated_at INTEGER NOT NULL
);
