-- The label of the activity that saved, as it read then (the audience list
-- names it; the campaign's canvas may have changed since).
ALTER TABLE audience_saves ADD COLUMN activity_label TEXT NOT NULL DEFAULT '';
