"""py-stats's hook, unit-tested in plain CPython against a real SQLite file
(uplift_hooks.testing): run with `python -m unittest` in this folder, with
uplift-hooks installed (the test suite does, in a fresh virtual environment).
"""

import sqlite3
import tempfile
import unittest
from pathlib import Path

import app
from uplift_hooks import DatabaseError
from uplift_hooks.testing import run_hook


class SummarizeLearners(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.db = Path(self.dir.name) / "app.sqlite3"
        with sqlite3.connect(self.db) as conn:
            conn.execute("CREATE TABLE learner (id INTEGER PRIMARY KEY, facility_id INTEGER NOT NULL, username TEXT NOT NULL)")
            conn.executemany(
                "INSERT INTO learner (facility_id, username) VALUES (?, ?)",
                [(1, "ada"), (1, "bo"), (2, "cy"), (3, "di"), (3, "ed"), (3, "flo")],
            )
        conn.close()

    def tearDown(self):
        self.dir.cleanup()

    def summary(self):
        with sqlite3.connect(self.db) as conn:
            rows = conn.execute("SELECT facility_id, learners FROM pystats_summary ORDER BY facility_id").fetchall()
        conn.close()
        return rows

    def test_counts_the_learners_of_every_facility(self):
        run = run_hook(app.summarize_learners, self.db, old_version="0.9.0", new_version="1.0.0")
        self.assertEqual(self.summary(), [(1, 2), (2, 1), (3, 3)])
        self.assertIn(("info", "counted 6 learners in 3 facilities"), run.log)
        self.assertEqual(run.stdout, "py-stats: 0.9.0 -> 1.0.0\n")

    def test_running_it_again_updates_the_counts(self):
        run_hook("summarize_learners", self.db, old_version="0.9.0", new_version="1.0.0")
        with sqlite3.connect(self.db) as conn:
            conn.execute("INSERT INTO learner (facility_id, username) VALUES (2, 'gus'), (2, 'hal')")
        conn.close()
        run_hook("summarize_learners", self.db, old_version="0.9.5", new_version="1.0.1")
        self.assertEqual(self.summary(), [(1, 2), (2, 3), (3, 3)])

    def test_a_failing_hook_changes_nothing(self):
        with sqlite3.connect(self.db) as conn:
            conn.execute("ALTER TABLE learner RENAME TO pupil")
        conn.close()
        with self.assertRaises(DatabaseError) as raised:
            run_hook(app.summarize_learners, self.db, old_version="0.9.0", new_version="1.0.0")
        self.assertIn("no such table: learner", str(raised.exception))
        # The table the hook created before failing was rolled back with it.
        with sqlite3.connect(self.db) as conn:
            tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        conn.close()
        self.assertEqual(tables, ["pupil"])


if __name__ == "__main__":
    unittest.main()
