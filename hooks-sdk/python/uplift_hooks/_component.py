"""The ``uplift_hooks`` API inside the component: the database and log
helpers wrap the ``uplift:hooks`` imports, and :class:`Hooks` is the export
uplift calls. Imported by ``uplift_hooks`` only when componentize-py's
generated bindings are there.
"""

import logging
import traceback

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import database as _db
from wit_world.imports import log as _log
from wit_world.imports import types as _types

from . import _HOOKS, Context, DatabaseError, _sql_value


def _to_value(v):
    v = _sql_value(v)
    if v is None:
        return _types.Value_Null()
    if isinstance(v, int):
        return _types.Value_Integer(v)
    if isinstance(v, float):
        return _types.Value_Real(v)
    if isinstance(v, str):
        return _types.Value_Text(v)
    return _types.Value_Blob(v)


def _from_value(v):
    if isinstance(v, _types.Value_Null):
        return None
    return v.value


def _params(params):
    return [_to_value(p) for p in params]


def _call(sql, fn, *args):
    try:
        return fn(*args)
    except Err as e:
        err = e.value
        raise DatabaseError(err.code, err.extended_code, err.message, sql) from None


def _rows(rows):
    return [tuple(_from_value(v) for v in row) for row in rows.rows]


class _Cursor:
    """The rows of one query as tuples, fetched ``batch`` rows at a time."""

    def __init__(self, handle, sql, batch):
        self._handle = handle
        self._sql = sql
        self._batch = max(1, int(batch))
        self.columns = handle.columns()

    def __iter__(self):
        while True:
            rows = _call(self._sql, self._handle.next, self._batch)
            if not rows:
                return
            for row in rows:
                yield tuple(_from_value(v) for v in row)


class Statement:
    """A statement prepared once and run many times."""

    def __init__(self, handle, sql):
        self._handle = handle
        self.sql = sql

    def execute(self, params=()):
        """Runs it with ``params``; returns the number of rows changed."""
        return _call(self.sql, self._handle.execute, _params(params))

    def execute_many(self, batch):
        """Runs it once for each parameter sequence in ``batch``, in order,
        in one call to the host: the fast way to change many rows one at a
        time (pass a few hundred to a few thousand sequences per call).
        Returns the number of rows changed by all of them. On an error the
        sequences before the failing one stay applied, and the message starts
        with ``parameter list N:`` (counting from 0)."""
        flat = [value for params in batch for value in _params(params)]
        return _call(self.sql, self._handle.execute_many, flat)

    def query(self, params=()):
        """Runs it as a query; returns every row as a tuple."""
        return _rows(_call(self.sql, self._handle.query, _params(params)))

    def cursor(self, params=(), batch=256):
        """Runs it as a query and streams its rows as tuples."""
        handle = _call(self.sql, self._handle.cursor, _params(params))
        return _Cursor(handle, self.sql, batch)

    @property
    def columns(self):
        """The names of the columns it returns."""
        return self._handle.columns()


class Database:
    """The application's database, limited to what the plugin declared.
    Parameters are a sequence bound in order to ``?`` placeholders; values
    are ``None``, ``int``, ``float``, ``str`` or ``bytes``. Failures raise
    :class:`DatabaseError`."""

    def execute(self, sql, params=()):
        """Runs one statement; returns the number of rows it changed."""
        return _call(sql, _db.execute, sql, _params(params))

    def execute_batch(self, sql):
        """Runs statements separated by ``;``, without parameters."""
        _call(sql, _db.execute_batch, sql)

    def query(self, sql, params=()):
        """Runs a query; returns every row as a tuple (capped by the host:
        use :meth:`cursor` for large results)."""
        return _rows(_call(sql, _db.query, sql, _params(params)))

    def query_dicts(self, sql, params=()):
        """Runs a query; returns every row as a dict by column name."""
        rows = _call(sql, _db.query, sql, _params(params))
        return [dict(zip(rows.columns, (_from_value(v) for v in row))) for row in rows.rows]

    def query_one(self, sql, params=()):
        """Runs a query; returns its first row, or None when there is none."""
        for row in self.cursor(sql, params, batch=1):
            return row
        return None

    def cursor(self, sql, params=(), batch=256):
        """Runs a query and streams its rows as tuples, ``batch`` at a time:
        the way to walk a large table."""
        handle = _call(sql, _db.open_cursor, sql, _params(params))
        return _Cursor(handle, sql, batch)

    def prepare(self, sql):
        """Prepares a statement to run many times."""
        return Statement(_call(sql, _db.prepare, sql), sql)

    def last_insert_rowid(self):
        """The rowid of the most recent successful INSERT."""
        return _db.last_insert_rowid()


class _UpliftLogHandler(logging.Handler):
    _LEVELS = [
        (logging.ERROR, _log.Level.ERROR),
        (logging.WARNING, _log.Level.WARN),
        (logging.INFO, _log.Level.INFO),
        (logging.DEBUG, _log.Level.DEBUG),
    ]

    def emit(self, record):
        level = next((lv for n, lv in self._LEVELS if record.levelno >= n), _log.Level.TRACE)
        try:
            message = self.format(record)
        except Exception:  # a bad format string must not stop the hook
            message = f"{record.msg!r} {record.args!r}"
        _log.log(level, message)


# Every logger reaches the upgrade's log: the root logger's only handler.
_root = logging.getLogger()
_root.handlers[:] = [_UpliftLogHandler()]
_root.setLevel(logging.DEBUG)


class Hooks(exports.Hooks):
    """The export uplift calls: runs the hook named ``ctx.hook``."""

    def run(self, ctx):
        func = _HOOKS.get(ctx.hook)
        if func is None:
            known = ", ".join(sorted(_HOOKS)) or "none"
            raise Err(f"plugin {ctx.plugin!r} has no hook named {ctx.hook!r} (it has: {known})")
        try:
            func(
                Context(
                    app=ctx.app,
                    plugin=ctx.plugin,
                    plugin_version=ctx.plugin_version,
                    hook=ctx.hook,
                    old_version=ctx.old_version,
                    new_version=ctx.new_version,
                    dry_run=ctx.dry_run,
                    db=Database(),
                )
            )
        except Exception as e:
            _log.log(_log.Level.ERROR, traceback.format_exc().rstrip())
            raise Err(f"{type(e).__name__}: {e}") from None
