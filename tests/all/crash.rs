//! Crash safety: `uplift upgrade` killed with SIGKILL at many moments spread
//! over a run (backup, migrations, hooks, commit) leaves either the old
//! database intact or the new one complete, and a second run finishes the job.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::support::{example_release, run, stderr, uplift};

/// How many kill moments the test spreads over 1.25 times the length of an
/// uninterrupted upgrade: about 51 fall inside the run itself, the rest leave
/// room for a run that is slower than the measured one.
const MOMENTS: u32 = 64;

/// Copies every file of `from` into `to` (flat folders and one level of
/// subfolders are all a home has).
pub(crate) fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The application's tables, row by row: what must survive any crash.
fn app_rows(db: &Path) -> String {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut out = String::new();
    for table in ["facility", "learner", "lesson", "progress"] {
        let mut stmt = conn
            .prepare(&format!("SELECT * FROM {table} ORDER BY 1, 2"))
            .unwrap();
        let n = stmt.column_count();
        let mut rows = stmt.query([]).unwrap();
        while let Some(row) = rows.next().unwrap() {
            for i in 0..n {
                let v: rusqlite::types::Value = row.get(i).unwrap();
                out.push_str(&format!("{v:?}|"));
            }
            out.push('\n');
        }
    }
    out
}

fn data_version(home: &Path) -> Option<String> {
    let out = run(&[
        "--home",
        home.to_str().unwrap(),
        "--release",
        example_release("1.0.0").to_str().unwrap(),
        "status",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "status failed after a crash: {}",
        stderr(&out)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    json["data_version"].as_str().map(str::to_string)
}

fn integrity(db: &Path) -> String {
    rusqlite::Connection::open(db)
        .unwrap()
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap()
}

/// A home at release 0.6.4 with enough rows that the upgrade to 1.0.0 takes
/// long enough to be interrupted in every phase.
fn old_home(root: &Path) -> PathBuf {
    let home = root.join("template");
    let out = run(&[
        "--home",
        home.to_str().unwrap(),
        "--release",
        example_release("0.6.4").to_str().unwrap(),
        "upgrade",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let conn = rusqlite::Connection::open(home.join("db.sqlite3")).unwrap();
    conn.execute_batch(
        "BEGIN;
         INSERT INTO facility (id, name) VALUES (1, 'a'), (2, 'b'), (3, 'c');
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 60000)
         INSERT INTO learner (id, facility_id, username, joined)
             SELECT i, 1 + i % 3, 'user' || i, '2020-01-01' FROM n;
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 40)
         INSERT INTO lesson (id, facility_id, title) SELECT i, 1 + i % 3, 'lesson ' || i FROM n;
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 120000)
         INSERT OR IGNORE INTO progress (learner_id, lesson_id, score)
             SELECT 1 + i % 60000, 1 + i % 40, CAST(i % 100 AS TEXT) FROM n;
         COMMIT;",
    )
    .unwrap();
    home
}

#[test]
fn upgrade_killed_at_any_moment_leaves_old_or_new_and_can_finish() {
    let scratch = tempfile::tempdir().unwrap();
    let template = old_home(scratch.path());
    let old_rows = app_rows(&template.join("db.sqlite3"));
    let release = example_release("1.0.0");

    // A first run compiles the plugins into the home's cache; every later run
    // starts with that cache, as an operator's would.
    let warmup = scratch.path().join("warmup");
    copy_dir(&template, &warmup);
    let out = run(&[
        "--home",
        warmup.to_str().unwrap(),
        "--release",
        release.to_str().unwrap(),
        "upgrade",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    copy_dir(&warmup.join("cache"), &template.join("cache"));

    // An uninterrupted run: how long it takes and what it produces.
    let reference = scratch.path().join("reference");
    copy_dir(&template, &reference);
    let started = Instant::now();
    let out = run(&[
        "--home",
        reference.to_str().unwrap(),
        "--release",
        release.to_str().unwrap(),
        "upgrade",
    ]);
    let full = started.elapsed();
    assert!(out.status.success(), "{}", stderr(&out));
    let new_rows = app_rows(&reference.join("db.sqlite3"));

    let mut outcomes = (0, 0); // (old, new)
    for k in 1..=MOMENTS {
        let home = scratch.path().join(format!("crash-{k}"));
        copy_dir(&template, &home);
        let mut child = uplift()
            .args([
                "--home",
                home.to_str().unwrap(),
                "--release",
                release.to_str().unwrap(),
                "upgrade",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Spread the moments over the whole run, and a little past its end.
        std::thread::sleep(full.mul_f64(f64::from(k) / f64::from(MOMENTS) * 1.25));
        let _ = child.kill(); // SIGKILL
        child.wait().unwrap();

        let db = home.join("db.sqlite3");
        let version = data_version(&home);
        assert_eq!(integrity(&db), "ok", "moment {k}: integrity_check");
        match version.as_deref() {
            Some("0.6.4") => {
                assert_eq!(
                    app_rows(&db),
                    old_rows,
                    "moment {k}: old version but changed rows"
                );
                outcomes.0 += 1;
            }
            Some("1.0.0") => {
                assert_eq!(
                    app_rows(&db),
                    new_rows,
                    "moment {k}: new version but rows differ"
                );
                outcomes.1 += 1;
            }
            other => panic!("moment {k}: data version {other:?} is neither old nor new"),
        }
        for entry in std::fs::read_dir(home.join("backups"))
            .into_iter()
            .flatten()
        {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.ends_with(".dump") || name.ends_with(".dump.zst") {
                let verified = uplift::backup::verify(&path);
                assert!(
                    verified.as_ref().is_ok_and(|v| v.is_verified()),
                    "moment {k}: backup {name} is not complete: {verified:?}"
                );
            }
        }

        // A second run finishes the job.
        let out = run(&[
            "--home",
            home.to_str().unwrap(),
            "--release",
            release.to_str().unwrap(),
            "upgrade",
        ]);
        assert!(
            out.status.success(),
            "moment {k}: second run: {}",
            stderr(&out)
        );
        assert_eq!(data_version(&home).as_deref(), Some("1.0.0"));
        assert_eq!(
            app_rows(&db),
            new_rows,
            "moment {k}: finished upgrade differs"
        );
        std::fs::remove_dir_all(&home).unwrap();
    }
    assert!(
        outcomes.0 > 0,
        "no kill landed before the commit: {outcomes:?} (run took {full:?})"
    );
    assert!(
        outcomes.1 > 0,
        "no kill landed after the commit: {outcomes:?}"
    );
}
