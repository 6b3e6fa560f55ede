CREATE TABLE profiles (
    workspace   TEXT NOT NULL,
    id          TEXT NOT NULL,
    attrs       JSONB NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (workspace, id)
);

CREATE TABLE audiences (
    id              TEXT PRIMARY KEY,
    workspace       TEXT NOT NULL,
    label           TEXT NOT NULL,
    dimension       TEXT NOT NULL,
    kind            TEXT NOT NULL,
    columns         TEXT NOT NULL,
    count           BIGINT NOT NULL,
    source_campaign TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    UNIQUE (workspace, label)
);

CREATE TABLE audience_members (
    audience_id TEXT NOT NULL REFERENCES audiences (id),
    profile_id  TEXT NOT NULL,
    data        JSONB NOT NULL,
    PRIMARY KEY (audience_id, profile_id)
);

-- Rules compare dates held in profile attributes; a value that is not a
-- timestamp must make the condition false, not fail the whole query.
CREATE FUNCTION collab_timestamptz(v text) RETURNS timestamptz
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN v::timestamptz;
EXCEPTION WHEN others THEN
    RETURN NULL;
END $$;
