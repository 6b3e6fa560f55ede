-- A campaign canvas's schedule, synced from its saved draft; next_run is
-- claimed with a compare-and-set so that one node runs each occurrence.
CREATE TABLE campaign_schedules (
    campaign_id TEXT PRIMARY KEY REFERENCES campaigns (id),
    workspace   TEXT NOT NULL,
    spec        TEXT NOT NULL,
    next_run    INTEGER,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX campaign_schedules_due ON campaign_schedules (next_run);
