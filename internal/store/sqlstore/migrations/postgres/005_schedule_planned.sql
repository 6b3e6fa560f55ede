-- A save writes its draft's schedule spec in the same transaction as the
-- draft; planned = 0 marks a spec whose next run the scheduler has yet to
-- compute (the scheduler owns the clock). Rows already there were planned
-- by the scheduler that synced them.
ALTER TABLE campaign_schedules ADD COLUMN planned INTEGER NOT NULL DEFAULT 1;
CREATE INDEX campaign_schedules_unplanned ON campaign_schedules (campaign_id) WHERE planned = 0;
