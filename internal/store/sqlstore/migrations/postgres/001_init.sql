CREATE TABLE campaigns (
    id          TEXT PRIMARY KEY,
    workspace   TEXT NOT NULL,
    name        TEXT NOT NULL,
    status      TEXT NOT NULL,
    version     BIGINT NOT NULL,
    rev         BIGINT NOT NULL,
    draft       TEXT NOT NULL,
    live        TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    updated_by  TEXT NOT NULL
);
CREATE INDEX campaigns_workspace ON campaigns (workspace, updated_at);

CREATE TABLE campaign_versions (
    campaign_id TEXT NOT NULL REFERENCES campaigns (id),
    version     BIGINT NOT NULL,
    rev_from    BIGINT NOT NULL,
    rev         BIGINT NOT NULL,
    doc         TEXT NOT NULL,
    at          BIGINT NOT NULL,
    by          TEXT NOT NULL,
    authors     TEXT NOT NULL,
    trigger     TEXT NOT NULL,
    PRIMARY KEY (campaign_id, version)
);
