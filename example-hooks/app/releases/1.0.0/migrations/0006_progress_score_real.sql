-- learnhub 1.0.0: progress.score becomes REAL. SQLite cannot change a
-- column's type in place, so this follows SQLite's documented procedure for
-- other table schema changes: create the new table, copy, drop, rename.
-- (uplift turns foreign-key enforcement off for the upgrade and checks
-- PRAGMA foreign_key_check before it commits.)
CREATE TABLE progress_new (
    learner_id INTEGER NOT NULL REFERENCES learner(id),
    lesson_id  INTEGER NOT NULL REFERENCES lesson(id),
    score      REAL CHECK (score IS NULL OR score BETWEEN 0 AND 100),
    PRIMARY KEY (learner_id, lesson_id)
);
INSERT INTO progress_new (learner_id, lesson_id, score)
    SELECT learner_id, lesson_id, CAST(NULLIF(trim(score), '') AS REAL) FROM progress;
DROP TABLE progress;
ALTER TABLE progress_new RENAME TO progress;
CREATE INDEX progress_lesson ON progress (lesson_id);
