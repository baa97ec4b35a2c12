"""The ``uplift_hooks`` API in plain CPython, over a real SQLite file opened
with :mod:`sqlite3`: what lets a plugin's hooks be unit-tested without
building the component (see :mod:`uplift_hooks.testing`).

It behaves as the component's implementation does where a hook can tell
(values, row tuples, rows changed, errors as :class:`DatabaseError` with
SQLite's codes, ``parameter list N:`` from ``execute_many``), but applies no
sandbox: a statement the manifest does not allow runs here and is refused by
uplift. ``uplift hooks test`` runs the built component in uplift's sandbox.
"""

import re
import sqlite3

from . import DatabaseError, _sql_value

_SQLITE_ERROR = 1
_SQLITE_MISUSE = 21
_SQLITE_RANGE = 25


def _error(e, sql):
    """``e``, an :mod:`sqlite3` exception, as the :class:`DatabaseError`
    uplift would raise for it."""
    message = str(e)
    # SQLite's own code when SQLite failed; sqlite3's checks before SQLite
    # is called (a second statement, a wrong number of parameters) have none.
    extended = getattr(e, "sqlite_errorcode", None)
    if extended is None:
        if "one statement at a time" in message:
            extended = _SQLITE_MISUSE
            message = "more than one statement given: use execute_batch for several"
        elif "bindings" in message:
            extended = _SQLITE_RANGE
        else:
            extended = _SQLITE_ERROR
    return DatabaseError(extended & 0xFF, extended, message, sql)


def _params(params):
    return tuple(_sql_value(p) for p in params)


def _run(conn, sql, params):
    try:
        return conn.execute(sql, _params(params))
    except sqlite3.Error as e:
        raise _error(e, sql) from None


def _changes(cursor, sql):
    """Runs ``cursor``'s statement to its end (as uplift does, RETURNING
    rows included); the rows it changed, 0 for anything but INSERT, UPDATE,
    DELETE and REPLACE."""
    try:
        cursor.fetchall()
    except sqlite3.Error as e:
        raise _error(e, sql) from None
    return max(cursor.rowcount, 0)


def _columns(cursor):
    return [d[0] for d in cursor.description or ()]


class _Cursor:
    """The rows of one query as tuples, fetched ``batch`` rows at a time."""

    def __init__(self, cursor, sql, batch):
        self._cursor = cursor
        self._sql = sql
        self._batch = max(1, int(batch))
        self.columns = _columns(cursor)

    def __iter__(self):
        while True:
            try:
                rows = self._cursor.fetchmany(self._batch)
            except sqlite3.Error as e:
                raise _error(e, self._sql) from None
            if not rows:
                return
            yield from rows


class Statement:
    """A statement prepared once and run many times."""

    def __init__(self, conn, sql):
        self._conn = conn
        self.sql = sql

    def execute(self, params=()):
        """Runs it with ``params``; returns the number of rows changed."""
        return _changes(_run(self._conn, self.sql, params), self.sql)

    def execute_many(self, batch):
        """Runs it once for each parameter sequence in ``batch``, in order.
        Returns the number of rows changed by all of them. On an error the
        sequences before the failing one stay applied, and the message starts
        with ``parameter list N:`` (counting from 0)."""
        changed = 0
        for index, params in enumerate(batch):
            try:
                changed += self.execute(params)
            except DatabaseError as e:
                raise DatabaseError(e.code, e.extended_code, f"parameter list {index}: {e.message}", self.sql) from None
        return changed

    def query(self, params=()):
        """Runs it as a query; returns every row as a tuple."""
        cursor = _run(self._conn, self.sql, params)
        return list(_Cursor(cursor, self.sql, 1024))

    def cursor(self, params=(), batch=256):
        """Runs it as a query and streams its rows as tuples."""
        return _Cursor(_run(self._conn, self.sql, params), self.sql, batch)

    @property
    def columns(self):
        """The names of the columns it returns."""
        # sqlite3 names a statement's columns only once it has run: run it in
        # a savepoint rolled back at once, every parameter NULL.
        count = 0
        while True:
            self._conn.execute("SAVEPOINT uplift_hooks_columns")
            try:
                return _columns(self._conn.execute(self.sql, (None,) * count))
            except sqlite3.ProgrammingError as e:
                wanted = re.search(r"statement uses (\d+)", str(e))
                if wanted is None or count:
                    raise _error(e, self.sql) from None
                count = int(wanted.group(1))
            except sqlite3.Error as e:
                raise _error(e, self.sql) from None
            finally:
                self._conn.execute("ROLLBACK TO uplift_hooks_columns")
                self._conn.execute("RELEASE uplift_hooks_columns")


class Database:
    """The application's database: here, the SQLite file behind ``conn``
    (an :class:`sqlite3.Connection`). Parameters are a sequence bound in
    order to ``?`` placeholders; values are ``None``, ``int``, ``float``,
    ``str`` or ``bytes``. Failures raise :class:`DatabaseError`."""

    def __init__(self, conn):
        self._conn = conn

    def execute(self, sql, params=()):
        """Runs one statement; returns the number of rows it changed."""
        return _changes(_run(self._conn, sql, params), sql)

    def execute_batch(self, sql):
        """Runs statements separated by ``;``, without parameters."""
        # Not sqlite3's executescript, which would COMMIT the hook's
        # transaction first: one complete statement at a time instead (a
        # ';' inside a string or a trigger's body does not complete one).
        statement = ""
        for piece in sql.split(";"):
            statement += piece + ";"
            if sqlite3.complete_statement(statement):
                if statement.strip("; \t\r\n"):
                    self.execute(statement)
                statement = ""
        if statement.strip("; \t\r\n"):
            self.execute(statement)

    def query(self, sql, params=()):
        """Runs a query; returns every row as a tuple."""
        return list(self.cursor(sql, params, batch=1024))

    def query_dicts(self, sql, params=()):
        """Runs a query; returns every row as a dict by column name."""
        cursor = self.cursor(sql, params, batch=1024)
        return [dict(zip(cursor.columns, row)) for row in cursor]

    def query_one(self, sql, params=()):
        """Runs a query; returns its first row, or None when there is none."""
        for row in self.cursor(sql, params, batch=1):
            return row
        return None

    def cursor(self, sql, params=(), batch=256):
        """Runs a query and streams its rows as tuples, ``batch`` at a time."""
        return _Cursor(_run(self._conn, sql, params), sql, batch)

    def prepare(self, sql):
        """Prepares a statement to run many times."""
        return Statement(self._conn, sql)

    def last_insert_rowid(self):
        """The rowid of the most recent successful INSERT."""
        return self._conn.execute("SELECT last_insert_rowid()").fetchone()[0]
