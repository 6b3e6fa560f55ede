-- A workspace's JSON Schema for its campaign documents (at most one):
-- every edit is checked against it where it lands (campaign.Schema).
CREATE TABLE document_schemas (
    workspace  TEXT PRIMARY KEY,
    schema     TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    updated_by TEXT NOT NULL
);
