-- learnhub 0.6.4: usernames are unique within a facility (a new index).
CREATE UNIQUE INDEX learner_username ON learner (facility_id, username);
