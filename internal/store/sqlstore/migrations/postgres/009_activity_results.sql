-- The last result of each activity of a campaign's canvas (a run's counts,
-- columns and sample; a Save audience's outcome), as its message, so that
-- a teammate who opens the campaign later sees the same counts.
CREATE TABLE activity_results (
    campaign_id TEXT NOT NULL,
    activity    TEXT NOT NULL,
    kind        TEXT NOT NULL,
    result      TEXT NOT NULL,
    at          BIGINT NOT NULL,
    PRIMARY KEY (campaign_id, activity, kind)
);

-- Every Save audience: the size history of an audience, and which
-- campaign, activity and person last saved it.
CREATE TABLE audience_saves (
    audience_id TEXT NOT NULL,
    at          BIGINT NOT NULL,
    count       BIGINT NOT NULL,
    added       BIGINT NOT NULL,
    removed     BIGINT NOT NULL,
    campaign_id TEXT NOT NULL,
    activity    TEXT NOT NULL,
    by          TEXT NOT NULL
);
CREATE INDEX audience_saves_audience ON audience_saves (audience_id, at);
