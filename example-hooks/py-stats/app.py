"""py-stats: a plugin written in plain Python.

On the upgrade to 1.0.0 it counts the learners of every facility and keeps
the counts in pystats_summary, a table it owns.
"""

from uplift_hooks import logger, plugin, version_upgrade

plugin(name="py-stats", version="1.0.0", reads=["learner"], owns="pystats_")


@version_upgrade(old_version="<1.0.0", new_version=">=1.0.0")
def summarize_learners(ctx):
    db = ctx.db
    db.execute_batch(
        """CREATE TABLE IF NOT EXISTS pystats_summary (
               facility_id INTEGER PRIMARY KEY,
               learners    INTEGER NOT NULL
           )"""
    )
    counts = {}
    for (facility_id,) in db.cursor("SELECT facility_id FROM learner", batch=500):
        counts[facility_id] = counts.get(facility_id, 0) + 1
    save = db.prepare(
        "INSERT INTO pystats_summary (facility_id, learners) VALUES (?, ?) "
        "ON CONFLICT (facility_id) DO UPDATE SET learners = excluded.learners"
    )
    # One call to the host for all the rows, not one per row.
    saved = save.execute_many(sorted(counts.items()))
    print(f"py-stats: {ctx.old_version} -> {ctx.new_version}")
    logger.info("counted %d learners in %d facilities", sum(counts.values()), saved)
