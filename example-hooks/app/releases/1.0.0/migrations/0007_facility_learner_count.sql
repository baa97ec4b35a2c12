-- learnhub 1.0.0: facilities keep a count of their learners (a column plus a
-- data backfill).
ALTER TABLE facility ADD COLUMN learner_count INTEGER NOT NULL DEFAULT 0;
UPDATE facility
   SET learner_count = (SELECT count(*) FROM learner WHERE learner.facility_id = facility.id);
