"""Unit-test a plugin's hooks in plain CPython, against a real SQLite file::

    import app                                   # the plugin's file
    from uplift_hooks.testing import run_hook

    def test_counts_learners(tmp_path):
        db = tmp_path / "app.sqlite3"
        ...                                      # create the tables the hook reads
        run = run_hook(app.summarize_learners, db, old_version="0.9.0", new_version="1.0.0")
        assert ("info", "counted 3 learners in 2 facilities") in run.log

The hook runs as uplift runs it: in a transaction of its own, committed
when it returns and rolled back when it raises (the exception then reaches
the test). Its ``ctx.db`` is :class:`uplift_hooks.Database` over the file,
its log and what it prints are collected in the returned :class:`HookRun`.

What this does not do is apply uplift's sandbox (the tables the manifest
declares, the limits): run the built component with ``uplift hooks test``
for that.
"""

import contextlib
import io
import logging
import sqlite3

from . import IN_COMPONENT, Context, Database, declared_plugin, hooks

__all__ = ["HookRun", "run_hook"]

# uplift's log levels, as the component reports Python's.
_LEVELS = [
    (logging.ERROR, "error"),
    (logging.WARNING, "warn"),
    (logging.INFO, "info"),
    (logging.DEBUG, "debug"),
]


class HookRun:
    """What a hook did besides changing the database: ``log``, its log lines
    as ``(level, message)`` pairs (levels as uplift names them: ``"error"``,
    ``"warn"``, ``"info"``, ``"debug"``, ``"trace"``), and ``stdout``, what it
    printed."""

    def __init__(self, log, stdout):
        self.log = log
        self.stdout = stdout

    def __repr__(self):
        return f"HookRun(log={self.log!r}, stdout={self.stdout!r})"


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines = []

    def emit(self, record):
        level = next((name for n, name in _LEVELS if record.levelno >= n), "trace")
        self.lines.append((level, self.format(record)))


def _hook_function(hook):
    registered = hooks()
    if isinstance(hook, str):
        if hook not in registered:
            known = ", ".join(sorted(registered)) or "none: import the plugin's module first"
            raise ValueError(f"no hook named {hook!r} (hooks declared: {known})")
        return registered[hook]
    if registered.get(getattr(hook, "__name__", None)) is not hook:
        raise ValueError(f"{hook!r} is not a hook: decorate it with @version_upgrade(old_version=..., new_version=...)")
    return hook


def run_hook(hook, db, *, old_version, new_version, app="app", dry_run=False):
    """Runs ``hook`` (a function decorated with ``@version_upgrade``, or its
    name) on the SQLite database ``db`` (a path, or an open
    :class:`sqlite3.Connection`) for an upgrade from ``old_version`` to
    ``new_version`` of ``app``; returns a :class:`HookRun`.

    Commits what the hook did when it returns; rolls it back and re-raises
    when it raises. The versions are given as they are, whether or not the
    hook's ranges match them: a test may call any hook directly.
    """
    if IN_COMPONENT:
        raise RuntimeError("uplift_hooks.testing runs hooks in plain CPython, not inside a component")
    func = _hook_function(hook)
    declared = declared_plugin() or {}
    owned = not isinstance(db, sqlite3.Connection)
    # The connection is left in autocommit mode: the savepoint below is the
    # hook's whole transaction, as uplift's savepoint per hook is.
    conn = sqlite3.connect(db, isolation_level=None) if owned else db
    collect = _Collect()
    root = logging.getLogger()
    level = root.level
    root.addHandler(collect)
    root.setLevel(logging.DEBUG)
    printed = io.StringIO()
    try:
        ctx = Context(
            app=app,
            plugin=declared.get("name", ""),
            plugin_version=declared.get("version", ""),
            hook=func.__name__,
            old_version=old_version,
            new_version=new_version,
            dry_run=dry_run,
            db=Database(conn),
        )
        conn.execute("SAVEPOINT uplift_hook")
        try:
            with contextlib.redirect_stdout(printed):
                func(ctx)
        except BaseException:
            conn.execute("ROLLBACK TO uplift_hook")
            conn.execute("RELEASE uplift_hook")
            raise
        conn.execute("RELEASE uplift_hook")
    finally:
        root.removeHandler(collect)
        root.setLevel(level)
        if owned:
            conn.close()
    return HookRun(collect.lines, printed.getvalue())
