CREATE TABLE campaigns (
    id          TEXT PRIMARY KEY,
    workspace   TEXT NOT NULL,
    name        TEXT NOT NULL,
    status      TEXT NOT NULL,
    version     INTEGER NOT NULL,
    rev         INTEGER NOT NULL,
    draft       TEXT NOT NULL,
    live        TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    updated_by  TEXT NOT NULL
);
CREATE INDEX campaigns_workspace ON campaigns (workspace, updated_at);

CREATE TABLE campaign_versions (
    campaign_id TEXT NOT NULL REFERENCES campaigns (id),
    version     INTEGER NOT NULL,
    rev_from    INTEGER NOT NULL,
    rev         INTEGER NOT NULL,
    doc         TEXT NOT NULL,
    at          INTEGER NOT NULL,
    by          TEXT NOT NULL,
    authors     TEXT NOT NULL,
    trigger     TEXT NOT NULL,
    PRIMARY KEY (campaign_id, version)
);
