//! I/O errors: the fault shim makes one write or one sync of `uplift
//! upgrade`, `dbbackup` or `dbrestore --latest` fail (EIO, ENOSPC, or a
//! short write), at each write and each sync of a recorded run in turn, and
//! each time:
//!
//! - nothing is lost or half-applied: the database is the old one (or the
//!   new one, if the command reported success), intact; every backup file is
//!   complete; a rerun of the upgrade finishes and `dbrestore --latest`
//!   restores a complete backup (the checks of [`crate::power_loss`]);
//! - a command that failed says so, and its message names the file that
//!   failed and the phase it failed in.
//!
//! The normal test run injects a few faults of each kind, spread over each
//! operation; `bench/power-loss` (`UPLIFT_FAULTS_FULL=1`) injects them all.

use std::path::Path;
use std::sync::OnceLock;

use crate::faults::{self, Op};
use crate::power_loss::{Operation, budget, check_home, homes};
use crate::support::{stderr, stdout};

/// How many faults of each kind (class and error) the normal test run
/// injects into each operation.
const REDUCED_PER_KIND: usize = 3;

/// The kinds of fault: which calls (shim class) and how they fail.
const KINDS: [(&str, &str); 5] = [
    ("write", "EIO"),
    ("write", "ENOSPC"),
    ("write", "short"),
    ("sync", "EIO"),
    ("sync", "ENOSPC"),
];

/// The words an error message may use to say which phase failed.
fn phase_words(op: Operation) -> &'static [&'static str] {
    match op {
        Operation::Upgrade | Operation::FirstUpgrade | Operation::WalUpgrade => &[
            "backup",
            "back up",
            "migration",
            "hook",
            "commit",
            "foreign key",
            "lock",
        ],
        Operation::Dbbackup | Operation::FirstDbbackup => &["backup", "back up", "dump", "lock"],
        Operation::DbrestoreLatest => &["restor", "safety backup", "back up", "lock"],
    }
}

/// What injecting faults into one operation found.
pub(crate) struct Findings {
    pub injected: usize,
    /// Faults the command absorbed (it succeeded anyway), described.
    pub absorbed: Vec<String>,
    pub bad_states: Vec<String>,
    pub bad_messages: Vec<String>,
}

/// Records `op` once to count its writes and syncs, then runs it again with
/// each fault of `per_kind` (evenly spread over the calls) and checks what
/// it leaves and says.
pub(crate) fn inject_into(op: Operation, per_kind: usize) -> Findings {
    let scratch = tempfile::tempdir().unwrap();
    let clean = scratch.path().join("clean");
    homes().copy(op.template(), &clean);
    let log = scratch.path().join("clean.log");
    let out = faults::with_shim(&mut op.command(&clean), &clean, &log, None)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}: {}", op.name(), stderr(&out));
    // The shim counts calls on files under the home; the compile cache is
    // a link out of it, so its files never count.
    let ops = faults::read_log(&log, &clean);
    let writes = ops.iter().filter(|o| matches!(o, Op::Write { .. })).count();
    let syncs = ops.iter().filter(|o| matches!(o, Op::Sync { .. })).count();

    let mut findings = Findings {
        injected: 0,
        absorbed: Vec::new(),
        bad_states: Vec::new(),
        bad_messages: Vec::new(),
    };
    for (class, error) in KINDS {
        let calls = if class == "write" { writes } else { syncs };
        let chosen: Vec<usize> = if calls <= per_kind {
            (1..=calls).collect()
        } else {
            // Evenly spread, first and last included.
            (0..per_kind)
                .map(|i| 1 + i * (calls - 1) / (per_kind - 1).max(1))
                .collect()
        };
        for n in chosen {
            let spec = format!("{class}:{n}:{error}");
            let home = scratch.path().join(format!("{class}-{n}-{error}"));
            homes().copy(op.template(), &home);
            let log = scratch.path().join(format!("{class}-{n}-{error}.log"));
            let out = faults::with_shim(&mut op.command(&home), &home, &log, Some(&spec))
                .output()
                .unwrap();
            let recorded = faults::read_log(&log, &home);
            let Some(target) = recorded.iter().find_map(|o| match o {
                Op::Inject { path, .. } => Some(path.clone()),
                _ => None,
            }) else {
                // This run made fewer such calls than the recorded one
                // (threads ordered differently): nothing was injected.
                continue;
            };
            findings.injected += 1;
            let case = format!(
                "{} with {spec} (on {})",
                op.name(),
                if target.is_empty() {
                    "the home folder"
                } else {
                    &target
                }
            );
            let succeeded = out.status.success();
            // What uplift said about the failure: from its first `error:`
            // line on (hooks' log lines come before).
            let all = stderr(&out);
            let message = match all.find("error:") {
                Some(i) => all[i..].to_string(),
                None => all.clone(),
            };
            if succeeded {
                findings.absorbed.push(case.clone());
            } else {
                let file = Path::new(&target)
                    .file_name()
                    .map_or(target.clone(), |n| n.to_string_lossy().into_owned());
                // SQLite's own files are named by the database's name.
                let names_file = message.contains(&file)
                    || (file.starts_with("db.sqlite3") && message.contains("db.sqlite3"));
                // The phase belongs to the cause, before what uplift adds
                // after it ("; the upgrade was rolled back ... the backup
                // made before it is ...", which names a backup in any case).
                let cause = message.split(';').next().unwrap_or_default().to_lowercase();
                let names_phase = phase_words(op).iter().any(|w| cause.contains(w));
                if !names_file || !names_phase {
                    findings.bad_messages.push(format!(
                        "{case}: the message names {}: {}",
                        match (names_file, names_phase) {
                            (false, false) => "neither the file nor the phase",
                            (false, true) => "the phase but not the file",
                            _ => "the file but not the phase",
                        },
                        message.trim()
                    ));
                }
            }
            let reported_backup =
                if succeeded && matches!(op, Operation::Dbbackup | Operation::FirstDbbackup) {
                    stdout(&out)
                        .lines()
                        .find(|l| l.ends_with(".dump"))
                        .map(std::path::PathBuf::from)
                } else {
                    None
                };
            let (before, after) = op.before_after();
            let state = match crate::power_loss::db_fingerprint(&home.join("db.sqlite3")) {
                Ok(fp) if !succeeded && before != after && fp == after => Err(format!(
                    "{} failed, but its change is in the database: {}",
                    op.name(),
                    message.trim()
                )),
                _ => check_home(op, &home, succeeded, reported_backup.as_deref()),
            };
            if let Err(problem) = state {
                findings.bad_states.push(format!(
                    "{case}: {problem} (exit {:?}: {})",
                    out.status.code(),
                    message.trim()
                ));
            }
        }
    }
    findings
}

/// The operations faults are injected into, each injected once per test
/// run and shared by the test of its states and the test of the messages.
const INJECTED: [Operation; 3] = [
    Operation::Upgrade,
    Operation::Dbbackup,
    Operation::DbrestoreLatest,
];

fn findings(op: Operation) -> &'static Findings {
    static FOUND: [OnceLock<Findings>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    let i = INJECTED.iter().position(|&o| o == op).unwrap();
    FOUND[i].get_or_init(|| {
        let f = inject_into(op, budget(REDUCED_PER_KIND));
        eprintln!(
            "I/O errors in {}: {} faults injected, {} absorbed (the command succeeded), {} bad states, {} messages without the file or the phase",
            op.name(),
            f.injected,
            f.absorbed.len(),
            f.bad_states.len(),
            f.bad_messages.len()
        );
        for line in f.bad_states.iter().chain(&f.bad_messages) {
            eprintln!("  {line}");
        }
        for line in &f.absorbed {
            eprintln!("  absorbed: {line}");
        }
        assert!(f.injected > 0, "no fault was injected into {}", op.name());
        f
    })
}

fn assert_no_bad_state(op: Operation) {
    let f = findings(op);
    assert!(
        f.bad_states.is_empty(),
        "I/O errors in {}: {} of {} faults left a bad state:\n{}",
        op.name(),
        f.bad_states.len(),
        f.injected,
        f.bad_states.join("\n")
    );
}

#[test]
fn io_errors_in_an_upgrade_leave_the_old_database() {
    assert_no_bad_state(Operation::Upgrade);
}

#[test]
fn io_errors_in_a_backup_leave_no_partial_backup() {
    assert_no_bad_state(Operation::Dbbackup);
}

#[test]
fn io_errors_in_a_restore_leave_the_old_database() {
    assert_no_bad_state(Operation::DbrestoreLatest);
}

#[test]
fn io_error_messages_name_the_file_and_the_phase() {
    let bad: Vec<&String> = INJECTED
        .iter()
        .flat_map(|&op| &findings(op).bad_messages)
        .collect();
    let injected: usize = INJECTED.iter().map(|&op| findings(op).injected).sum();
    assert!(
        bad.is_empty(),
        "{} of {injected} failures were reported without the file or the phase:\n{}",
        bad.len(),
        bad.iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// A hook that swallows the I/O error which ended uplift's transaction
/// (SQLite rolls a transaction back on an I/O error) and carries on writing
/// must not commit its later writes on their own: each of a few injected
/// errors on the journal, while the swallowing hook (tests/plugins/swallow)
/// runs, leaves the old database or the whole upgrade (issue 13, item 2).
#[test]
fn an_io_error_swallowed_by_a_hook_does_not_commit_half_an_upgrade() {
    let h = homes();
    let scratch = tempfile::tempdir().unwrap();
    let release = crate::crash::swallow_release(scratch.path());
    let upgrade = |home: &Path| {
        let mut cmd = crate::support::uplift();
        cmd.args(["--home", home.to_str().unwrap()]).args([
            "--release",
            release.to_str().unwrap(),
            "upgrade",
        ]);
        cmd
    };

    // A clean run: the result, and which journal writes the hook makes.
    let clean = scratch.path().join("clean");
    h.copy(&h.old, &clean);
    let log = scratch.path().join("clean.log");
    let out = faults::with_shim(&mut upgrade(&clean), &clean, &log, None)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let new_db = crate::power_loss::db_fingerprint(&clean.join("db.sqlite3")).unwrap();
    let ops = faults::read_log(&log, &clean);
    // Standard error, each byte with the op that wrote it: the hook's writes
    // lie between the end of the log line before its own and its own.
    let (mut text, mut owner) = (String::new(), Vec::new());
    for (i, op) in ops.iter().enumerate() {
        if let Op::Out { fd: 2, text: t } = op {
            text.push_str(t);
            owner.extend(std::iter::repeat_n(i, t.len()));
        }
    }
    let at = text
        .find("[swallow/carry_on]")
        .expect("the swallowing hook logs");
    let (start, end) = (text[..at].rfind('\n').map_or(0, |p| owner[p]), owner[at]);
    let mut n = 0;
    let mut during = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        if let Op::Write { path, .. } = op
            && path == "db.sqlite3-journal"
        {
            n += 1;
            if i > start && i < end {
                during.push(n);
            }
        }
    }
    assert!(!during.is_empty(), "the hook wrote nothing to the journal");
    let mut picks: Vec<usize> = (0..4).map(|i| during[i * (during.len() - 1) / 3]).collect();
    picks.dedup();

    let mut bad = Vec::new();
    for n in picks {
        let home = scratch.path().join(format!("eio-{n}"));
        h.copy(&h.old, &home);
        let spec = format!("write:{n}:EIO:db.sqlite3-journal");
        let log = scratch.path().join(format!("eio-{n}.log"));
        let out = faults::with_shim(&mut upgrade(&home), &home, &log, Some(&spec))
            .output()
            .unwrap();
        let fp = crate::power_loss::db_fingerprint(&home.join("db.sqlite3"));
        let ok = match &fp {
            Ok(fp) if out.status.success() => *fp == new_db,
            Ok(fp) => *fp == h.old_db,
            Err(_) => false,
        };
        if !ok {
            let all = stderr(&out);
            bad.push(format!(
                "upgrade with {spec}: exit {:?}, the database is {}; uplift said: {}",
                out.status.code(),
                match &fp {
                    Ok(fp) if *fp == h.old_db => "the old one".to_string(),
                    Ok(fp) if *fp == new_db => "the new one".to_string(),
                    Ok(fp) => format!("half upgraded ({})", fp.lines().next().unwrap_or_default()),
                    Err(e) => e.clone(),
                },
                all[all.find("error:").unwrap_or(0)..].trim()
            ));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}
