-- learnhub 0.2.0: lessons (a new table).
CREATE TABLE lesson (
    id          INTEGER PRIMARY KEY,
    facility_id INTEGER REFERENCES facility(id),
    title       TEXT NOT NULL,
    created     TEXT
);
