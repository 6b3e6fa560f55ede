-- The draft epoch a saved draft's revs count in. Opening a new epoch in
-- Redis moves it (compare-and-set) before the epoch accepts edits, and every
-- draft save must name it: a flush built in an epoch that ended can never
-- commit over the revs the new epoch reuses.
ALTER TABLE campaigns ADD COLUMN epoch TEXT NOT NULL DEFAULT '';
