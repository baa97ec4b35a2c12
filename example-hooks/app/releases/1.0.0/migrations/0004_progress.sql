-- learnhub 0.6.4: progress of learners through lessons. The score was stored
-- as text in this release; 1.0.0 fixes that with a table rebuild.
CREATE TABLE progress (
    learner_id INTEGER NOT NULL REFERENCES learner(id),
    lesson_id  INTEGER NOT NULL REFERENCES lesson(id),
    score      TEXT,
    PRIMARY KEY (learner_id, lesson_id)
);
