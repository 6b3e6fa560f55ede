CREATE TABLE profiles (
    workspace   TEXT NOT NULL,
    id          TEXT NOT NULL,
    attrs       TEXT NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (workspace, id)
);

CREATE TABLE audiences (
    id              TEXT PRIMARY KEY,
    workspace       TEXT NOT NULL,
    label           TEXT NOT NULL,
    dimension       TEXT NOT NULL,
    kind            TEXT NOT NULL,
    columns         TEXT NOT NULL,
    count           INTEGER NOT NULL,
    source_campaign TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    UNIQUE (workspace, label)
);

CREATE TABLE audience_members (
    audience_id TEXT NOT NULL REFERENCES audiences (id),
    profile_id  TEXT NOT NULL,
    data        TEXT NOT NULL,
    PRIMARY KEY (audience_id, profile_id)
);
