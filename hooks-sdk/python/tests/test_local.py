"""uplift_hooks in plain CPython: the database API over a real SQLite file
behaves as it does inside the component (values, rows, rows changed, errors
and their codes), and run_hook commits or rolls back as uplift does.

Run with `python -m unittest discover -s tests` in hooks-sdk/python, with the
package installed (the test suite does, in a fresh virtual environment).
"""

import logging
import sqlite3
import tempfile
import unittest
from pathlib import Path

import uplift_hooks
from uplift_hooks import DatabaseError, plugin, version_upgrade
from uplift_hooks.build import read_manifest
from uplift_hooks.testing import run_hook

plugin(name="local-probe", version="2.0.0", writes=["item"], owns="probe_")


@version_upgrade(old_version="*", new_version="*")
def tour(ctx):
    db = ctx.db
    db.execute_batch("CREATE TABLE probe_note (id INTEGER PRIMARY KEY, body TEXT); "
                     "INSERT INTO probe_note (body) VALUES ('a; b');")
    rowid = db.last_insert_rowid()
    logging.getLogger("plugin").warning("note %d", rowid)
    print(ctx.app, ctx.plugin, ctx.plugin_version, ctx.hook, ctx.old_version, ctx.new_version, ctx.dry_run)


@version_upgrade(plugin_old_version="<2.0.0", plugin_new_version=">=2.0.0")
def on_plugin_upgrade(ctx):
    ctx.db.execute("UPDATE item SET name = ?", [f"{ctx.plugin} {ctx.plugin_version}"])


@version_upgrade(old_version="*", new_version="*")
def half_then_fail(ctx):
    ctx.db.execute("UPDATE item SET name = 'changed'")
    raise RuntimeError("stop here")


class LocalDatabase(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.path = Path(self.dir.name) / "app.sqlite3"
        self.conn = sqlite3.connect(self.path, isolation_level=None)
        self.conn.execute("CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT UNIQUE, price REAL, photo BLOB)")
        self.db = uplift_hooks.Database(self.conn)

    def tearDown(self):
        self.conn.close()
        self.dir.cleanup()

    def test_it_runs_outside_a_component(self):
        self.assertFalse(uplift_hooks.IN_COMPONENT)

    def test_values_round_trip_as_the_component_gives_them(self):
        changed = self.db.execute("INSERT INTO item (name, price, photo) VALUES (?, ?, ?)", ["kettle", 9.5, bytearray(b"\x00\xff")])
        self.assertEqual(changed, 1)
        self.db.execute("INSERT INTO item (name, price) VALUES (?, ?)", [True, None])
        self.assertEqual(self.db.query("SELECT name, price, photo FROM item ORDER BY id"),
                         [("kettle", 9.5, b"\x00\xff"), ("1", None, None)])
        self.assertEqual(self.db.query_dicts("SELECT id, name FROM item WHERE id = 1"), [{"id": 1, "name": "kettle"}])
        self.assertEqual(self.db.query_one("SELECT name FROM item WHERE id = ?", [2]), ("1",))
        self.assertIsNone(self.db.query_one("SELECT name FROM item WHERE id = 99"))
        self.assertEqual(self.db.last_insert_rowid(), 2)
        with self.assertRaisesRegex(TypeError, "cannot bind a dict"):
            self.db.execute("SELECT ?", [{}])

    def test_rows_changed_count_only_what_a_statement_changed(self):
        self.db.execute_batch("INSERT INTO item (name) VALUES ('a'); INSERT INTO item (name) VALUES ('b');")
        self.assertEqual(self.db.execute("UPDATE item SET price = 1"), 2)
        self.assertEqual(self.db.execute("CREATE TABLE other (x)"), 0)
        self.assertEqual(self.db.execute("SELECT * FROM item"), 0)
        self.assertEqual(self.db.execute("DELETE FROM item WHERE name = 'a' RETURNING id"), 1)

    def test_cursors_stream_rows_and_name_their_columns(self):
        self.db.prepare("INSERT INTO item (name) VALUES (?)").execute_many([[f"n{i}"] for i in range(10)])
        cursor = self.db.cursor("SELECT id, name FROM item WHERE id > ? ORDER BY id", [7], batch=2)
        self.assertEqual(cursor.columns, ["id", "name"])
        self.assertEqual(list(cursor), [(8, "n7"), (9, "n8"), (10, "n9")])
        statement = self.db.prepare("SELECT name AS label, price FROM item WHERE id = ?")
        self.assertEqual(statement.columns, ["label", "price"])
        self.assertEqual(statement.query([3]), [("n2", None)])
        self.assertEqual(list(statement.cursor([4])), [("n3", None)])
        # Naming the columns ran nothing for good: a DELETE's columns are none.
        self.assertEqual(self.db.prepare("DELETE FROM item WHERE id > ?").columns, [])
        self.assertEqual(self.db.query_one("SELECT count(*) FROM item"), (10,))

    def test_errors_carry_sqlite_codes_and_the_statement(self):
        with self.assertRaises(DatabaseError) as raised:
            self.db.execute("SELECT * FROM nowhere")
        self.assertEqual(raised.exception.code, 1)
        self.assertEqual(raised.exception.sql, "SELECT * FROM nowhere")
        self.assertFalse(raised.exception.is_refusal)
        self.db.execute("INSERT INTO item (name) VALUES ('x')")
        with self.assertRaises(DatabaseError) as raised:
            self.db.execute("INSERT INTO item (name) VALUES ('x')")
        self.assertEqual((raised.exception.code, raised.exception.extended_code), (19, 2067))  # UNIQUE
        with self.assertRaisesRegex(DatabaseError, "more than one statement given"):
            self.db.execute("SELECT 1; SELECT 2")

    def test_execute_many_names_the_failing_parameter_list_and_keeps_those_before(self):
        insert = self.db.prepare("INSERT INTO item (name) VALUES (?)")
        with self.assertRaises(DatabaseError) as raised:
            insert.execute_many([["a"], ["b"], ["a"], ["c"]])
        self.assertTrue(raised.exception.message.startswith("parameter list 2: "), raised.exception.message)
        self.assertEqual(self.db.query("SELECT name FROM item ORDER BY id"), [("a",), ("b",)])


class RunHook(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.path = Path(self.dir.name) / "app.sqlite3"
        with sqlite3.connect(self.path) as conn:
            conn.execute("CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT)")
            conn.execute("INSERT INTO item (name) VALUES ('kept')")
        conn.close()

    def tearDown(self):
        self.dir.cleanup()

    def names(self):
        with sqlite3.connect(self.path) as conn:
            rows = conn.execute("SELECT name FROM item").fetchall()
        conn.close()
        return rows

    def test_the_hook_gets_its_context_and_its_log_and_prints_are_collected(self):
        run = run_hook(tour, self.path, old_version="1.0.0", new_version="2.0.0", app="shop")
        self.assertEqual(run.log, [("warn", "note 1")])
        self.assertEqual(run.stdout, "shop local-probe 2.0.0 tour 1.0.0 2.0.0 False\n")
        with sqlite3.connect(self.path) as conn:
            self.assertEqual(conn.execute("SELECT body FROM probe_note").fetchall(), [("a; b",)])
        conn.close()

    def test_a_hook_that_raises_is_rolled_back(self):
        with self.assertRaisesRegex(RuntimeError, "stop here"):
            run_hook("half_then_fail", self.path, old_version="1.0.0", new_version="2.0.0")
        self.assertEqual(self.names(), [("kept",)])

    def test_a_hook_selected_by_its_plugin_version_runs_like_any_other(self):
        run_hook(on_plugin_upgrade, self.path, old_version="1.0.0", new_version="1.0.0")
        self.assertEqual(self.names(), [("local-probe 2.0.0",)])

    def test_ranges_are_the_applications_both_or_neither_then_a_plugins(self):
        for kwargs, message in [
            ({"old_version": "*"}, "needs new_version"),
            ({"new_version": "*", "plugin_new_version": "*"}, "needs old_version"),
            ({}, "or plugin_old_version and/or plugin_new_version"),
        ]:
            with self.assertRaisesRegex(TypeError, message):
                version_upgrade(**kwargs)

    def test_only_declared_hooks_run(self):
        with self.assertRaisesRegex(ValueError, r"no hook named 'nope' \(hooks declared: half_then_fail, on_plugin_upgrade, tour\)"):
            run_hook("nope", self.path, old_version="1", new_version="2")
        with self.assertRaisesRegex(ValueError, "decorate it with @version_upgrade"):
            run_hook(lambda ctx: None, self.path, old_version="1", new_version="2")


class BuildReadsRanges(unittest.TestCase):
    def test_plugin_ranges_reach_the_manifest_and_absent_ones_stay_absent(self):
        with tempfile.TemporaryDirectory() as tmp:
            app = Path(tmp) / "app.py"
            app.write_text(
                "from uplift_hooks import plugin, version_upgrade\n"
                "plugin(name='notes', version='2.0.0', owns='notes_')\n"
                "@version_upgrade(plugin_new_version='*')\n"
                "def create(ctx): pass\n"
                "@version_upgrade(old_version='*', new_version='>=1.0', plugin_old_version='<2.0.0')\n"
                "def convert(ctx): pass\n"
            )
            manifest, _ = read_manifest(app)
        self.assertEqual(manifest["hooks"], [
            {"name": "create", "plugin_new_version": "*", "order": 4},
            {"name": "convert", "old_version": "*", "new_version": ">=1.0", "plugin_old_version": "<2.0.0", "order": 6},
        ])


if __name__ == "__main__":
    unittest.main()
