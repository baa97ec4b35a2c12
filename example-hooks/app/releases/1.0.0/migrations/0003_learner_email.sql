-- learnhub 0.2.0: learners get an email address (an added column).
ALTER TABLE learner ADD COLUMN email TEXT;
