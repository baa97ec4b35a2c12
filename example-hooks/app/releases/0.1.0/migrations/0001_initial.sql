-- learnhub 0.1.0: facilities and their learners.
CREATE TABLE facility (
    id   INTEGER PRIMARY KEY,
    name TEXT NOT NULL
);

CREATE TABLE learner (
    id          INTEGER PRIMARY KEY,
    facility_id INTEGER NOT NULL REFERENCES facility(id),
    username    TEXT NOT NULL,
    joined      TEXT
);
