//! The example application, learnhub, on every upgrade path: data created at
//! release i (with its fixtures), upgraded directly to release j, ends with
//! the schema of a fresh install of j (see `verify-paths`) and with exactly
//! the effects of the hooks whose ranges match (i, j).

use std::path::Path;

use crate::support::{example_release, query_i64, run, stderr};

const RELEASES: [&str; 4] = ["0.1.0", "0.2.0", "0.6.4", "1.0.0"];

fn version(v: &str) -> uplift::version::Version {
    uplift::version::Version::parse(v).unwrap()
}

fn table_exists(db: &Path, table: &str) -> bool {
    query_i64(
        db,
        &format!("SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = '{table}'"),
    ) == 1
}

/// Installs `from` with its fixtures in a new home and upgrades it to `to`.
fn upgrade_path(root: &Path, from: &str, to: &str) -> std::path::PathBuf {
    let home = root.join(format!("{from}-{to}"));
    let home_s = home.to_str().unwrap();
    crate::support::install_example(&home, from);
    let out = run(&[
        "--home",
        home_s,
        "--release",
        example_release(to).to_str().unwrap(),
        "upgrade",
    ]);
    assert!(
        out.status.success(),
        "upgrade {from} -> {to}: {}",
        stderr(&out)
    );
    home.join("db.sqlite3")
}

#[test]
fn every_upgrade_path_runs_exactly_the_hooks_whose_ranges_match() {
    let scratch = tempfile::tempdir().unwrap();
    for (i, from) in RELEASES.iter().enumerate() {
        for to in &RELEASES[i + 1..] {
            let db = upgrade_path(scratch.path(), from, to);
            let (old, new) = (version(from), version(to));
            let path = format!("{from} -> {to}");
            assert_eq!(
                query_i64(&db, "SELECT count(*) FROM pragma_foreign_key_check"),
                0,
                "{path}"
            );

            // badges/create_tables: old "*", new ">=0.2.0".
            assert_eq!(
                table_exists(&db, "badges_award"),
                new >= version("0.2.0"),
                "{path}"
            );

            // big-leap: old "<0.6.4", new ">=1.0.0" — the seed's big leap.
            let leap = old < version("0.6.4") && new >= version("1.0.0");
            assert_eq!(table_exists(&db, "bigleap_log"), leap, "{path}");
            if leap {
                let recorded: String = rusqlite::Connection::open(&db)
                    .unwrap()
                    .query_row(
                        "SELECT old_version || '>' || new_version FROM bigleap_log",
                        [],
                        |r| r.get(0),
                    )
                    .unwrap();
                assert_eq!(recorded, format!("{from}>{to}"), "{path}");
            }

            // email-backfill: old "<1.0.0", new ">=1.0.0".
            let backfilled = new >= version("1.0.0");
            let missing = query_i64(&db, "SELECT count(*) FROM learner WHERE email IS NULL");
            let learners = query_i64(&db, "SELECT count(*) FROM learner");
            assert!(learners > 0, "{path}: the fixtures put learners in");
            if new >= version("0.2.0") {
                assert_eq!(
                    missing == 0,
                    backfilled,
                    "{path}: {missing} learners without email"
                );
            }
            if backfilled {
                // Learners that had an email keep it.
                let kept = query_i64(
                    &db,
                    "SELECT count(*) FROM learner WHERE email LIKE '%@mail.example'",
                );
                let had = if old >= version("0.2.0") {
                    learners / 4
                } else {
                    0
                };
                assert_eq!(kept, had, "{path}");
                // The migration's backfill of learner_count.
                assert_eq!(
                    query_i64(&db, "SELECT sum(learner_count) FROM facility"),
                    learners,
                    "{path}"
                );
                // badges/first_lesson: one badge per learner with progress.
                assert_eq!(
                    query_i64(&db, "SELECT count(*) FROM badges_award"),
                    query_i64(&db, "SELECT count(DISTINCT learner_id) FROM progress"),
                    "{path}"
                );
                // The table rebuild turned text scores into numbers.
                assert_eq!(
                    query_i64(
                        &db,
                        "SELECT count(*) FROM progress WHERE typeof(score) = 'text'"
                    ),
                    0,
                    "{path}"
                );
            }
            // notes, a plugin hook (selected by the plugin's own version):
            // notes 1.0.0 ships in 0.6.4, notes 2.0.0 in 1.0.0, and either
            // way its table ends with notes 2's `pinned`. Its welcome notes
            // reach the learners the fixtures loaded at `from` once the
            // upgrade runs its hooks.
            assert_eq!(
                table_exists(&db, "notes_note"),
                new >= version("0.6.4"),
                "{path}"
            );
            if new >= version("0.6.4") {
                let pinned = query_i64(
                    &db,
                    "SELECT count(*) FROM pragma_table_info('notes_note') WHERE name = 'pinned'",
                );
                assert_eq!(pinned == 1, new >= version("1.0.0"), "{path}");
                assert_eq!(
                    query_i64(&db, "SELECT count(*) FROM notes_note"),
                    learners,
                    "{path}"
                );
            }
            // py-stats (Python): old "<1.0.0", new ">=1.0.0".
            assert_eq!(table_exists(&db, "pystats_summary"), backfilled, "{path}");
            if backfilled {
                assert_eq!(
                    query_i64(&db, "SELECT sum(learners) FROM pystats_summary"),
                    learners,
                    "{path}"
                );
            }
            // Each active plugin's version is recorded with the data.
            let plugins = query_i64(&db, "SELECT count(*) FROM uplift_plugins");
            let expected = uplift::release::Release::load(&example_release(to))
                .unwrap()
                .core_plugins
                .len();
            assert_eq!(plugins as usize, expected, "{path}");
        }
    }
}

#[test]
fn status_shows_the_hooks_to_run_the_plugins_and_the_latest_backups() {
    let scratch = tempfile::tempdir().unwrap();
    let home = scratch.path().join("home");
    let home_s = home.to_str().unwrap();
    let r064 = example_release("0.6.4");
    let r100 = example_release("1.0.0");
    let out = run(&[
        "--home",
        home_s,
        "--release",
        r064.to_str().unwrap(),
        "upgrade",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));

    let status = |release: &Path| -> serde_json::Value {
        let out = run(&[
            "--home",
            home_s,
            "--release",
            release.to_str().unwrap(),
            "status",
            "--json",
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let before = status(&r100);
    assert_eq!(before["state"], "upgrade needed");
    let hooks: Vec<String> = before["hooks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            format!(
                "{}/{}",
                h["plugin"].as_str().unwrap(),
                h["hook"].as_str().unwrap()
            )
        })
        .collect();
    // 0.6.4 -> 1.0.0: not the big leap (that is for data older than 0.6.4).
    assert_eq!(
        hooks,
        [
            "notes/create_notes",
            "notes/add_pinned",
            "badges/create_tables",
            "badges/first_lesson",
            "email-backfill/backfill_emails",
            "py-stats/summarize_learners"
        ]
    );
    assert_eq!(before["plugins"].as_array().unwrap().len(), 5);
    assert_eq!(
        before["plugin_changes"],
        serde_json::json!([
            {"plugin": "big-leap", "from": null, "to": "1.0.0"},
            {"plugin": "email-backfill", "from": null, "to": "1.0.0"},
            {"plugin": "notes", "from": "1.0.0", "to": "2.0.0"},
            {"plugin": "py-stats", "from": null, "to": "1.0.0"},
        ])
    );
    assert_eq!(before["backups"].as_array().unwrap().len(), 0);

    let out = run(&[
        "--home",
        home_s,
        "--release",
        r100.to_str().unwrap(),
        "upgrade",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let after = status(&r100);
    assert_eq!(after["state"], "up to date");
    assert_eq!(after["hooks"].as_array().unwrap().len(), 0);
    assert_eq!(after["plugin_changes"], serde_json::json!([]));
    assert_eq!(after["backups"][0]["data_version"], "0.6.4");
    assert_eq!(after["backups"][0]["kind"], "automatic");
}
