"""Unit tests of app.py's hooks, in plain CPython against a real SQLite file:
``python -m unittest`` in this folder (with uplift-hooks installed)."""

import sqlite3
import tempfile
import unittest
from pathlib import Path

import app
from uplift_hooks.testing import run_hook


class RecordUpgrade(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.db = Path(self.dir.name) / "app.sqlite3"

    def tearDown(self):
        self.dir.cleanup()

    def test_records_the_upgrade(self):
        run = run_hook(app.record_upgrade, self.db, old_version="0.9.0", new_version="1.0.0")
        conn = sqlite3.connect(self.db)
        try:
            rows = conn.execute("SELECT old_version, new_version FROM __PREFIX__upgrades").fetchall()
        finally:
            conn.close()
        self.assertEqual(rows, [("0.9.0", "1.0.0")])
        self.assertIn(("info", "recorded the upgrade from 0.9.0 to 1.0.0"), run.log)


if __name__ == "__main__":
    unittest.main()
