"""__NAME__: an uplift plugin written in Python.

Each function decorated with ``@version_upgrade`` is a hook that runs, inside
uplift's upgrade transaction, when the data version before the upgrade matches
``old_version`` and the release being installed matches ``new_version``.
``plugin(...)`` declares what the hooks may touch: ``reads=[...]`` and
``writes=[...]`` name the application's tables; ``owns`` is a prefix of the
tables the plugin creates and keeps for itself. The build reads these calls
without running the code, so their arguments must be literals.
"""

from uplift_hooks import logger, plugin, version_upgrade

plugin(name="__NAME__", version="0.1.0", owns="__PREFIX__")


@version_upgrade(old_version="<1.0.0", new_version=">=1.0.0")
def record_upgrade(ctx):
    """Records every upgrade to 1.0.0 or later in a table the plugin owns."""
    db = ctx.db
    db.execute_batch(
        """CREATE TABLE IF NOT EXISTS __PREFIX__upgrades (
               id          INTEGER PRIMARY KEY,
               old_version TEXT NOT NULL,
               new_version TEXT NOT NULL
           )"""
    )
    db.execute(
        "INSERT INTO __PREFIX__upgrades (old_version, new_version) VALUES (?, ?)",
        [ctx.old_version, ctx.new_version],
    )
    logger.info("recorded the upgrade from %s to %s", ctx.old_version, ctx.new_version)
