"""Write uplift upgrade hooks in plain Python.

A plugin is one Python file::

    from uplift_hooks import plugin, version_upgrade, logger

    plugin(name="big-leap", version="1.0.0", reads=["facility"], owns="bigleap_")

    @version_upgrade(old_version="<0.6.4", new_version=">=1.0.0")
    def big_leap_upgrade(ctx):
        logger.warning("You've just upgraded from a very old version to a very new version!")
        (facilities,) = ctx.db.query_one("SELECT count(*) FROM facility")

built into a WebAssembly component, with its manifest embedded, by one
command: ``hooks-sdk/python/build-plugin app.py -o app.wasm``. The build reads
``plugin(...)`` and every ``@version_upgrade(...)`` from the source (their
arguments must be literals) and checks them before anything is built.

Inside the component, this module connects the hooks to the ``uplift:hooks``
world: ``Hooks.run`` is the export uplift calls, the database and log helpers
wrap the imports. Everything a hook prints lands in the upgrade's log too.
"""

import logging
import traceback

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import database as _db
from wit_world.imports import log as _log
from wit_world.imports import types as _types

__all__ = [
    "Context",
    "Database",
    "DatabaseError",
    "Hooks",
    "Statement",
    "logger",
    "plugin",
    "version_upgrade",
]

_PLUGIN = {}
_HOOKS = {}


def plugin(name, version, reads=(), writes=(), owns=None):
    """Declares the plugin: its name, version and the tables its hooks may
    touch (``reads``: tables read; ``writes``: tables read and changed;
    ``owns``: a table-name prefix whose tables it may create and drop).

    Call it once, at the top of the plugin's file, with literal arguments:
    the build reads them from the source to write the manifest.
    """
    if _PLUGIN:
        raise RuntimeError("plugin() is called twice; call it once per plugin")
    _PLUGIN.update(name=name, version=version, reads=list(reads), writes=list(writes), owns=owns)


def version_upgrade(old_version, new_version):
    """Marks ``def hook(ctx): ...`` as an upgrade hook, run when the data
    version before the upgrade matches ``old_version`` and the release being
    installed matches ``new_version`` (uplift's range syntax, e.g.
    ``"<0.6.4"``, ``">=1.0.0"``, ``"*"``). The hook's name is the function's.

    The hook fails the upgrade (which is then rolled back) by raising any
    exception; its message is shown to the operator.
    """

    def register(func):
        if func.__name__ in _HOOKS:
            raise RuntimeError(f"two hooks are named {func.__name__!r}")
        _HOOKS[func.__name__] = func
        return func

    return register


class DatabaseError(Exception):
    """A statement failed: SQLite's error, or the sandbox's refusal
    (``code == 23``, SQLITE_AUTH)."""

    AUTH = 23

    def __init__(self, code, extended_code, message, sql=None):
        self.code = code
        self.extended_code = extended_code
        self.message = message
        self.sql = sql
        where = f" in `{' '.join(sql.split())[:120]}`" if sql else ""
        super().__init__(f"{message} (SQLite code {code}){where}")

    @property
    def is_refusal(self):
        """Whether the sandbox refused the statement."""
        return self.code == self.AUTH


def _to_value(v):
    if v is None:
        return _types.Value_Null()
    if isinstance(v, bool):
        return _types.Value_Integer(int(v))
    if isinstance(v, int):
        return _types.Value_Integer(v)
    if isinstance(v, float):
        return _types.Value_Real(v)
    if isinstance(v, str):
        return _types.Value_Text(v)
    if isinstance(v, (bytes, bytearray, memoryview)):
        return _types.Value_Blob(bytes(v))
    raise TypeError(f"cannot bind a {type(v).__name__} as an SQL parameter: use None, int, float, str or bytes")


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


class Context:
    """Where in the upgrade a hook runs: ``app``, ``plugin``,
    ``plugin_version``, ``hook``, ``old_version``, ``new_version``,
    ``dry_run``, and ``db``, the :class:`Database`."""

    def __init__(self, wit_ctx):
        self.app = wit_ctx.app
        self.plugin = wit_ctx.plugin
        self.plugin_version = wit_ctx.plugin_version
        self.hook = wit_ctx.hook
        self.old_version = wit_ctx.old_version
        self.new_version = wit_ctx.new_version
        self.dry_run = wit_ctx.dry_run
        self.db = Database()


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


_root = logging.getLogger()
_root.handlers[:] = [_UpliftLogHandler()]
_root.setLevel(logging.DEBUG)

#: The plugin's logger: ``logger.info(...)``, ``logger.warning(...)``, ...
#: Any other ``logging`` logger reaches the upgrade's log as well.
logger = logging.getLogger("plugin")


class Hooks(exports.Hooks):
    """The export uplift calls: runs the hook named ``ctx.hook``."""

    def run(self, ctx):
        func = _HOOKS.get(ctx.hook)
        if func is None:
            known = ", ".join(sorted(_HOOKS)) or "none"
            raise Err(f"plugin {ctx.plugin!r} has no hook named {ctx.hook!r} (it has: {known})")
        try:
            func(Context(ctx))
        except Exception as e:
            _log.log(_log.Level.ERROR, traceback.format_exc().rstrip())
            raise Err(f"{type(e).__name__}: {e}") from None
