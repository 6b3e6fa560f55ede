-- History that helps: a version can carry a user's label ("Sent to legal")
-- and say which version it restored.
ALTER TABLE campaign_versions ADD COLUMN label TEXT NOT NULL DEFAULT '';
ALTER TABLE campaign_versions ADD COLUMN restored_from BIGINT NOT NULL DEFAULT 0;

-- The people of a workspace as their tokens last named them, so that history
-- and presence show "Ann" rather than the login id "ann".
CREATE TABLE people (
    workspace TEXT NOT NULL,
    user_id   TEXT NOT NULL,
    name      TEXT NOT NULL,
    seen_at   BIGINT NOT NULL,
    PRIMARY KEY (workspace, user_id)
);
