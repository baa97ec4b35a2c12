//! Crash safety: `uplift upgrade` killed with SIGKILL at many moments spread
//! over a run (backup, migrations, hooks, commit) leaves either the old
//! database intact or the new one complete, and a second run finishes the job:
//! on a database in rollback-journal mode, on one the application left in WAL
//! mode (with committed frames still in its `-wal`), and with a plugin whose
//! hook swallows database errors and carries on writing.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::support::{component, example_release, run, stderr, uplift};

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

/// `uplift status --json` of `home` against `release`, which must succeed.
pub(crate) fn status_json(home: &Path, release: &Path) -> serde_json::Value {
    let out = run(&[
        "--home",
        home.to_str().unwrap(),
        "--release",
        release.to_str().unwrap(),
        "status",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "status failed after a crash: {}",
        stderr(&out)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn data_version(home: &Path, release: &Path) -> Option<String> {
    status_json(home, release)["data_version"]
        .as_str()
        .map(str::to_string)
}

/// A home at release 0.6.4 with enough rows (`learners`, and twice as many
/// progress rows) that the upgrade to 1.0.0 takes long enough to be
/// interrupted in every phase.
fn old_home(root: &Path, name: &str, learners: u32) -> PathBuf {
    let home = root.join(name);
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
        &format!(
            "BEGIN;
             INSERT INTO facility (id, name) VALUES (1, 'a'), (2, 'b'), (3, 'c');
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {learners})
             INSERT INTO learner (id, facility_id, username, joined)
                 SELECT i, 1 + i % 3, 'user' || i, '2020-01-01' FROM n;
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 40)
             INSERT INTO lesson (id, facility_id, title) SELECT i, 1 + i % 3, 'lesson ' || i FROM n;
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2 * {learners})
             INSERT OR IGNORE INTO progress (learner_id, lesson_id, score)
                 SELECT 1 + i % {learners}, 1 + i % 40, CAST(i % 100 AS TEXT) FROM n;
             COMMIT;"
        ),
    )
    .unwrap();
    home
}

/// The example application's release 1.0.0 with one more core plugin,
/// `swallow` (tests/plugins/swallow), whose hook swallows every database
/// error and carries on writing; built under `root`.
pub(crate) fn swallow_release(root: &Path) -> PathBuf {
    let release = root.join("release-swallow");
    copy_dir(&example_release("1.0.0"), &release);
    std::fs::copy(
        component("uplift-test-swallow"),
        release.join("plugins/swallow.wasm"),
    )
    .unwrap();
    let toml = release.join("release.toml");
    let text = std::fs::read_to_string(&toml).unwrap();
    let text = text.replace("core_plugins = [", "core_plugins = [\"swallow\", ");
    assert!(text.contains("\"swallow\""), "{text}");
    std::fs::write(&toml, text).unwrap();
    release
}

/// What the three variants share, built once: the old home (with a compile
/// cache holding every plugin of both releases, as an operator's would hold
/// after a first run), a smaller one with the same cache for the WAL and
/// swallowing variants (a tenth of the rows: their kills spread over
/// every phase all the same, in far less time), and the swallowing
/// release.
struct Setup {
    _scratch: tempfile::TempDir,
    template: PathBuf,
    small: PathBuf,
    swallow: PathBuf,
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let scratch = tempfile::tempdir().unwrap();
        let template = old_home(scratch.path(), "template", 60_000);
        let swallow = swallow_release(scratch.path());
        for (n, release) in [example_release("1.0.0"), swallow.clone()]
            .iter()
            .enumerate()
        {
            let warmup = scratch.path().join(format!("warmup-{n}"));
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
            std::fs::remove_dir_all(&warmup).unwrap();
        }
        let small = old_home(scratch.path(), "small", 6_000);
        copy_dir(&template.join("cache"), &small.join("cache"));
        Setup {
            _scratch: scratch,
            template,
            small,
            swallow,
        }
    })
}

/// Runs `uplift upgrade` of `home` to `release` and kills it (SIGKILL)
/// after `delay`.
pub(crate) fn kill_upgrade_after(home: &Path, release: &Path, delay: Duration) {
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
    std::thread::sleep(delay);
    let _ = child.kill(); // SIGKILL
    child.wait().unwrap();
}

/// Runs `kill_after(k, delay)` (which kills a run after `delay` and says
/// whether the kill left the old version) at `moments` moments spread over
/// 1.25 times `full`, the length of an uninterrupted run; then, since a busy
/// machine can make the killed runs much slower (or faster) than the
/// measured one, a few more moments further out (or sooner) until a kill
/// lands on each side of the commit. Returns how many kills left the old
/// version and how many the new one.
pub(crate) fn spread_kills(
    full: Duration,
    moments: u32,
    mut kill_after: impl FnMut(u32, Duration) -> bool,
) -> (u32, u32) {
    let mut outcomes = (0, 0); // (old, new)
    let count = |outcomes: &mut (u32, u32), old: bool| {
        if old {
            outcomes.0 += 1;
        } else {
            outcomes.1 += 1;
        }
    };
    for k in 1..=moments {
        let delay = full.mul_f64(f64::from(k) / f64::from(moments) * 1.25);
        count(&mut outcomes, kill_after(k, delay));
    }
    for extra in 1..=6 {
        if outcomes.1 == 0 {
            count(
                &mut outcomes,
                kill_after(moments + extra, full * (1 << extra)),
            );
        }
        if outcomes.0 == 0 {
            count(
                &mut outcomes,
                kill_after(moments + extra, full / (1 << (extra + 1))),
            );
        }
    }
    outcomes
}

fn fingerprint(db: &Path) -> String {
    crate::power_loss::db_fingerprint(db).unwrap_or_else(|e| panic!("{}: {e}", db.display()))
}

/// Kills `uplift upgrade` from `template` to `release` at MOMENTS moments
/// and checks each home it leaves.
fn kill_at_many_moments(name: &str, template: &Path, release: &Path) {
    let scratch = tempfile::tempdir().unwrap();
    // Read from a copy: the last connection to a WAL database checkpoints it.
    let probe = scratch.path().join("probe");
    copy_dir(template, &probe);
    let old_rows = fingerprint(&probe.join("db.sqlite3"));

    // An uninterrupted run: how long it takes and what it produces.
    let reference = scratch.path().join("reference");
    copy_dir(template, &reference);
    let started = Instant::now();
    let out = run(&[
        "--home",
        reference.to_str().unwrap(),
        "--release",
        release.to_str().unwrap(),
        "upgrade",
    ]);
    let full = started.elapsed();
    assert!(out.status.success(), "{name}: {}", stderr(&out));
    let new_rows = fingerprint(&reference.join("db.sqlite3"));

    // Kills one run after `delay`; checks what it left and that a second
    // run finishes. Returns whether the kill left the old version.
    let kill_after = |k: u32, delay: Duration| -> bool {
        let home = scratch.path().join(format!("crash-{k}"));
        copy_dir(template, &home);
        kill_upgrade_after(&home, release, delay);

        let db = home.join("db.sqlite3");
        let version = data_version(&home, release);
        let rows = fingerprint(&db);
        let old = match version.as_deref() {
            Some("0.6.4") => {
                assert!(
                    rows == old_rows,
                    "{name}, moment {k}: old version but changed rows"
                );
                true
            }
            Some("1.0.0") => {
                assert!(
                    rows == new_rows,
                    "{name}, moment {k}: new version but rows differ"
                );
                false
            }
            other => panic!("{name}, moment {k}: data version {other:?} is neither old nor new"),
        };
        for entry in std::fs::read_dir(home.join("backups"))
            .into_iter()
            .flatten()
        {
            let path = entry.unwrap().path();
            let name_ = path.file_name().unwrap().to_string_lossy().into_owned();
            if name_.ends_with(".dump") || name_.ends_with(".dump.zst") {
                let verified = uplift::backup::verify(&path);
                assert!(
                    verified.as_ref().is_ok_and(|v| v.is_verified()),
                    "{name}, moment {k}: backup {name_} is not complete: {verified:?}"
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
            "{name}, moment {k}: second run: {}",
            stderr(&out)
        );
        assert_eq!(data_version(&home, release).as_deref(), Some("1.0.0"));
        assert!(
            fingerprint(&db) == new_rows,
            "{name}, moment {k}: finished upgrade differs"
        );
        std::fs::remove_dir_all(&home).unwrap();
        old
    };
    let outcomes = spread_kills(full, MOMENTS, kill_after);
    eprintln!("{name}: {outcomes:?} (old, new) of {MOMENTS} kills; an upgrade takes {full:?}");
    assert!(
        outcomes.0 > 0,
        "{name}: no kill landed before the commit: {outcomes:?} (run took {full:?})"
    );
    assert!(
        outcomes.1 > 0,
        "{name}: no kill landed after the commit: {outcomes:?}"
    );
}

#[test]
fn upgrade_killed_at_any_moment_leaves_old_or_new_and_can_finish() {
    kill_at_many_moments(
        "rollback journal",
        &setup().template,
        &example_release("1.0.0"),
    );
}

#[test]
fn upgrade_of_a_wal_database_killed_at_any_moment_leaves_old_or_new_and_can_finish() {
    let setup = setup();
    let scratch = tempfile::tempdir().unwrap();
    let template = scratch.path().join("wal");
    copy_dir(&setup.small, &template);
    // The application switched to WAL and was stopped with committed frames
    // still in the log (no checkpoint): what uplift finds on many sites.
    let db = template.join("db.sqlite3");
    let app = rusqlite::Connection::open(&db).unwrap();
    let mode: String = app
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    app.execute_batch(
        "PRAGMA wal_autocheckpoint=0;
         UPDATE learner SET username = username || '-w' WHERE id % 7 = 0;
         INSERT INTO facility (id, name) VALUES (4, 'd');",
    )
    .unwrap();
    let left = scratch.path().join("left");
    std::fs::create_dir(&left).unwrap();
    for suffix in ["", "-wal"] {
        std::fs::copy(
            template.join(format!("db.sqlite3{suffix}")),
            left.join(format!("db.sqlite3{suffix}")),
        )
        .unwrap();
    }
    drop(app);
    for suffix in ["", "-wal"] {
        let _ = std::fs::remove_file(template.join(format!("db.sqlite3{suffix}")));
        std::fs::rename(
            left.join(format!("db.sqlite3{suffix}")),
            template.join(format!("db.sqlite3{suffix}")),
        )
        .unwrap();
    }
    assert!(
        std::fs::metadata(template.join("db.sqlite3-wal"))
            .unwrap()
            .len()
            > 0,
        "the template's WAL holds the application's last commits"
    );
    kill_at_many_moments("WAL", &template, &example_release("1.0.0"));
}

#[test]
fn upgrade_with_a_hook_that_swallows_errors_killed_at_any_moment_leaves_old_or_new() {
    let setup = setup();
    kill_at_many_moments("swallowing hook", &setup.small, &setup.swallow);
}
