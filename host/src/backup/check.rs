//! Checking a restored database before it replaces the current one, on
//! several cores.
//!
//! `PRAGMA integrity_check` runs on one core, and most of its time goes to
//! looking every row up in each of its table's indexes. The check here runs
//! the same verifications split into pieces, each on its own read-only
//! connection, the largest first, on as many threads as there are cores
//! (at most [`MAX_WORKERS`]):
//!
//! - `PRAGMA quick_check` of the whole file: the structure of every b-tree,
//!   walked together so that a page used twice (by two trees or by a tree
//!   and the freelist) or never used is found; the freelist; the auto-vacuum
//!   pointer map; the number of entries of every index against its table's
//!   rows; every row's record format, `NOT NULL`, column types and `CHECK`
//!   constraints; the `xIntegrity` check of every virtual table (the modules
//!   a dump may create, FTS3/4/5 and R-Tree, run the same check whether
//!   quick or not).
//! - `PRAGMA integrity_check(T)` for every table `T` that has an index or is
//!   `WITHOUT ROWID`: what the full check adds to the quick one, which is
//!   only about indexes (every row present in each index with the same
//!   values, the rowid at the end of each index record, `UNIQUE` indexes
//!   unique, `WITHOUT ROWID` keys in order). A per-table check skips the
//!   freelist and the page accounting, which the quick check above covers.
//!   For a rowid table without an index, `integrity_check(T)` does nothing
//!   the quick check has not done, so it is not run.
//! - `PRAGMA foreign_key_check`.
//!
//! Together these verify everything `PRAGMA integrity_check` followed by
//! `PRAGMA foreign_key_check` verifies (SQLite 3.50's `pragma.c` and
//! `sqlite3BtreeIntegrityCheck`); with [`IntegrityCheck::Quick`] only the
//! first and last run.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use rusqlite::{Connection, OpenFlags};

use super::restore::{IntegrityCheck, RestoreError};
use super::{Progress, ProgressUnit};
use crate::meta;

/// The most threads a check uses.
pub(crate) const MAX_WORKERS: usize = 2;

/// Page cache of the connection running the largest piece, in KiB. The
/// index lookups of the full check jump around the file: a 32 MB cache
/// takes a quarter off the full check of the benchmark's 200 MB database.
/// With each connection's cache its own (see `.cargo/config.toml`), the
/// process then peaks under 50 MB, at 200 MB as at 2 GB.
const LARGEST_CACHE_KIB: usize = 32 * 1024;

/// Page cache of the connections running the other pieces, in KiB.
const CACHE_KIB: usize = 4 * 1024;

/// The most problems reported.
const MAX_PROBLEMS: usize = 20;

/// One piece of the check.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Job {
    /// `PRAGMA quick_check` of the whole file.
    Whole,
    /// `PRAGMA integrity_check(table)`.
    Table(String),
    /// `PRAGMA foreign_key_check`.
    ForeignKeys,
}

/// What a piece found.
enum Found {
    /// Integrity problems, as SQLite words them (empty: none).
    Integrity(Vec<String>),
    /// Foreign-key violations: how many, and the first few described.
    ForeignKeys(u64, Vec<String>),
}

/// Checks the database built at `target` from `dump`; returns its data
/// version. Fails with [`RestoreError::Check`] naming the problems SQLite
/// reports, or [`RestoreError::Build`] when the database cannot be read.
pub(crate) fn check(
    target: &Path,
    dump: &Path,
    level: IntegrityCheck,
    progress: &mut dyn Progress,
) -> Result<Option<String>, RestoreError> {
    let build_err = |source| RestoreError::Build {
        path: target.to_path_buf(),
        source,
    };
    progress.begin("checking", None, ProgressUnit::Rows);
    release_freed_memory();
    let conn = open(target, 2048).map_err(build_err)?;
    let jobs = plan(&conn, level).map_err(build_err)?;
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, MAX_WORKERS)
        .min(jobs.len());
    let found = run(target, &jobs, workers).map_err(build_err)?;

    let mut integrity = Vec::new();
    let mut violations = 0u64;
    let mut fk_details = Vec::new();
    for found in found {
        match found {
            Found::Integrity(lines) => {
                for line in lines {
                    if integrity.len() < MAX_PROBLEMS && !integrity.contains(&line) {
                        integrity.push(line);
                    }
                }
            }
            Found::ForeignKeys(count, details) => {
                violations += count;
                fk_details.extend(details);
            }
        }
    }
    if !integrity.is_empty() {
        return Err(RestoreError::Check {
            path: dump.to_path_buf(),
            check: match level {
                IntegrityCheck::Full => "integrity check",
                IntegrityCheck::Quick => "quick check",
            },
            details: integrity.join("; "),
        });
    }
    if violations > 0 {
        return Err(RestoreError::Check {
            path: dump.to_path_buf(),
            check: "foreign key check",
            details: format!("{violations} violation(s): {}", fk_details.join("; ")),
        });
    }
    let version = meta::data_version(&conn)
        .map_err(|e| match e {
            meta::MetaError::Sqlite(source) => build_err(source),
            other => RestoreError::Check {
                path: dump.to_path_buf(),
                check: "data version",
                details: other.to_string(),
            },
        })?
        .map(|v| v.to_string());
    progress.end();
    Ok(version)
}

/// Hands the memory the build freed back to the operating system before
/// the check's caches fill: the allocator would keep much of it, so the
/// process would hold both (measured on the benchmark's 200 MB database:
/// a peak 8 MB lower).
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim has no preconditions: it only returns free memory
    // of glibc's heaps to the system and touches no live allocation.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// A read-only connection to the database being checked, with a page cache
/// of `cache_kib` KiB.
fn open(target: &Path, cache_kib: usize) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        target,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.execute_batch(&format!("PRAGMA cache_size=-{cache_kib};"))?;
    Ok(conn)
}

/// The pieces of the check, the most expensive first.
///
/// The cost of each is estimated from the pages of the b-trees it reads. A
/// restored database was written one b-tree after the other, so the pages
/// from a tree's root page to the next root page are (nearly all) that
/// tree's: sizes come from `sqlite_schema` and the page count, without
/// reading the data. Looking a row up in an index costs far more than
/// reading it, hence the weight of index pages.
fn plan(conn: &Connection, level: IntegrityCheck) -> rusqlite::Result<Vec<Job>> {
    let page_count: u64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
    if level == IntegrityCheck::Quick {
        return Ok(vec![Job::Whole, Job::ForeignKeys]);
    }
    // name -> (table it belongs to, root page, is an index)
    let mut trees: Vec<(String, String, u64, bool)> = Vec::new();
    {
        let mut stmt = conn.prepare(
            "SELECT name, tbl_name, rootpage, type = 'index' FROM main.sqlite_schema
             WHERE type IN ('table', 'index')",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let root: Option<i64> = row.get(2)?;
            trees.push((
                row.get(0)?,
                row.get(1)?,
                root.unwrap_or(0).max(0) as u64,
                row.get(3)?,
            ));
        }
    }
    let mut without_rowid = Vec::new();
    {
        let mut stmt =
            conn.prepare("SELECT name FROM pragma_table_list WHERE schema = 'main' AND wr")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            without_rowid.push(row.get::<_, String>(0)?);
        }
    }
    let mut roots: Vec<u64> = trees.iter().map(|t| t.2).filter(|&r| r > 0).collect();
    roots.sort_unstable();
    let pages_of = |root: u64| -> u64 {
        if root == 0 {
            return 0;
        }
        let next = roots
            .iter()
            .find(|&&r| r > root)
            .copied()
            .unwrap_or(page_count + 1);
        next.saturating_sub(root).max(1)
    };
    // table -> (its pages, its index pages, needs a check of its own)
    let mut tables: HashMap<String, (u64, u64, bool)> = HashMap::new();
    for (name, table, root, is_index) in &trees {
        if *is_index {
            let entry = tables.entry(table.clone()).or_default();
            entry.1 += pages_of(*root);
            entry.2 = true;
        } else {
            let entry = tables.entry(name.clone()).or_default();
            entry.0 += pages_of(*root);
            if without_rowid.contains(name) {
                entry.2 = true;
            }
        }
    }
    const INDEX_WEIGHT: u64 = 40;
    let mut weighted: Vec<(u64, Job)> = vec![(page_count, Job::Whole)];
    let mut child_pages = page_count / 2;
    if !has_foreign_keys(conn)? {
        child_pages = 0;
    }
    weighted.push((child_pages, Job::ForeignKeys));
    // Sorted by name first, so that equal weights run in a stable order.
    let tables: BTreeMap<_, _> = tables.into_iter().collect();
    for (name, (pages, index_pages, needed)) in tables {
        if needed {
            weighted.push((pages + INDEX_WEIGHT * index_pages, Job::Table(name)));
        }
    }
    weighted.sort_by_key(|w| std::cmp::Reverse(w.0));
    Ok(weighted.into_iter().map(|(_, job)| job).collect())
}

/// Whether any table declares a foreign key.
fn has_foreign_keys(conn: &Connection) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM main.sqlite_schema AS s, pragma_foreign_key_list(s.name) AS f
                        WHERE s.type = 'table')",
        [],
        |r| r.get(0),
    )
}

/// Runs `jobs` on `workers` threads, each with its own connection; returns
/// what each found, in the order of `jobs` (stopping early once a problem
/// is found).
fn run(target: &Path, jobs: &[Job], workers: usize) -> rusqlite::Result<Vec<Found>> {
    // The calling thread runs the first (largest) piece, with the large
    // cache: it reuses the memory the build's connection freed on this
    // thread, where a new thread would add to the process's size.
    let next = AtomicUsize::new(1);
    let stop = AtomicBool::new(false);
    let results: Mutex<Vec<(usize, Found)>> = Mutex::new(Vec::new());
    let work = |mut claimed: Option<usize>| -> rusqlite::Result<()> {
        let conn = open(target, CACHE_KIB)?;
        let mut cache = CACHE_KIB;
        loop {
            let i = claimed
                .take()
                .unwrap_or_else(|| next.fetch_add(1, Ordering::Relaxed));
            if i >= jobs.len() || stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            // The largest piece gets the large cache; whoever runs it gives
            // the memory back for the next.
            let wanted = if i == 0 { LARGEST_CACHE_KIB } else { CACHE_KIB };
            if wanted != cache {
                conn.execute_batch(&format!("PRAGMA cache_size=-{wanted};"))?;
                cache = wanted;
            }
            let found = match run_job(&conn, &jobs[i]) {
                Ok(found) => found,
                Err(e) => {
                    stop.store(true, Ordering::Relaxed);
                    return Err(e);
                }
            };
            let problem = match &found {
                Found::Integrity(lines) => !lines.is_empty(),
                Found::ForeignKeys(n, _) => *n > 0,
            };
            if problem {
                stop.store(true, Ordering::Relaxed);
            }
            if let Ok(mut r) = results.lock() {
                r.push((i, found));
            }
        }
    };
    let outcome = std::thread::scope(|scope| {
        let handles: Vec<_> = (1..workers).map(|_| scope.spawn(|| work(None))).collect();
        let mut outcome = work(Some(0));
        for handle in handles {
            let joined = handle
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            if outcome.is_ok() {
                outcome = joined;
            }
        }
        outcome
    });
    outcome?;
    let mut results = results.into_inner().unwrap_or_default();
    results.sort_by_key(|(i, _)| *i);
    Ok(results.into_iter().map(|(_, found)| found).collect())
}

/// Runs one piece of the check.
fn run_job(conn: &Connection, job: &Job) -> rusqlite::Result<Found> {
    let sql = match job {
        Job::Whole => format!("PRAGMA quick_check({MAX_PROBLEMS})"),
        Job::Table(name) => format!("PRAGMA integrity_check(\"{}\")", name.replace('"', "\"\"")),
        Job::ForeignKeys => {
            let mut stmt = conn.prepare("PRAGMA foreign_key_check")?;
            let mut rows = stmt.query([])?;
            let mut count = 0u64;
            let mut details = Vec::new();
            while let Some(row) = rows.next()? {
                count += 1;
                if details.len() < 5 {
                    let table: String = row.get(0)?;
                    let rowid: Option<i64> = row.get(1)?;
                    let parent: String = row.get(2)?;
                    let row_text = rowid
                        .map(|r| format!("row {r}"))
                        .unwrap_or_else(|| "a row".into());
                    details.push(format!(
                        "{row_text} of {table} refers to a missing row of {parent}"
                    ));
                }
            }
            return Ok(Found::ForeignKeys(count, details));
        }
    };
    let mut stmt = conn.prepare(&sql)?;
    let mut rows = stmt.query([])?;
    let mut problems = Vec::new();
    while let Some(row) = rows.next()? {
        let line: String = row.get(0)?;
        if line != "ok" && problems.len() < MAX_PROBLEMS {
            problems.push(line);
        }
    }
    Ok(Found::Integrity(problems))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::NoProgress;

    /// A database of several tables, with and without indexes, one of them
    /// `WITHOUT ROWID`, and a foreign key.
    fn database(path: &Path) -> Connection {
        let conn = Connection::open(path).unwrap();
        conn.execute_batch(
            "CREATE TABLE plain(x);
             CREATE TABLE people(id INTEGER PRIMARY KEY, a TEXT, b TEXT);
             CREATE TABLE tags(name TEXT PRIMARY KEY, n INTEGER) WITHOUT ROWID;
             CREATE TABLE notes(person INTEGER REFERENCES people(id), body TEXT);
             WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 3000)
             INSERT INTO people SELECT i, 'a' || (i * 7919 % 3000), 'b' || (i * 104729 % 3001) FROM c;
             INSERT INTO plain SELECT a FROM people;
             INSERT INTO tags SELECT b, id FROM people;
             INSERT INTO notes SELECT id, 'note ' || id FROM people;
             CREATE INDEX people_a ON people(a);
             CREATE INDEX people_b ON people(b);
             CREATE INDEX notes_person ON notes(person);",
        )
        .unwrap();
        conn
    }

    /// Runs the full check on `path`, asserts that `check` is the one that
    /// failed, and returns the error's text.
    fn full_check_fails_with(path: &Path, check: &str) -> String {
        let err = check_file(path, IntegrityCheck::Full).unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(&err, RestoreError::Check { check: c, .. } if *c == check),
            "{text}"
        );
        text
    }

    fn check_file(path: &Path, level: IntegrityCheck) -> Result<Option<String>, RestoreError> {
        check(path, Path::new("test.dump"), level, &mut NoProgress)
    }

    /// The pieces read side by side only if each connection has its own
    /// page cache: the bundled SQLite must be compiled as
    /// `.cargo/config.toml` says.
    #[test]
    fn sqlite_gives_each_connection_its_own_page_cache_and_no_allocation_mutex() {
        let conn = Connection::open_in_memory().unwrap();
        let options: Vec<String> = conn
            .prepare("PRAGMA compile_options")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            !options.iter().any(|o| o == "ENABLE_MEMORY_MANAGEMENT"),
            "{options:?}"
        );
        assert!(
            options.iter().any(|o| o == "DEFAULT_MEMSTATUS=0"),
            "{options:?}"
        );
    }

    #[test]
    fn the_plan_checks_every_table_with_an_index_largest_first_and_the_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        drop(database(&path));
        let conn = open(&path, 1024).unwrap();
        let jobs = plan(&conn, IntegrityCheck::Full).unwrap();
        let tables: Vec<&str> = jobs
            .iter()
            .filter_map(|j| match j {
                Job::Table(name) => Some(name.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(tables.len(), 3, "{jobs:?}");
        assert_eq!(tables[0], "people", "two indexes: the most work: {jobs:?}");
        assert!(
            tables.contains(&"tags") && tables.contains(&"notes"),
            "{jobs:?}"
        );
        assert!(jobs.contains(&Job::Whole) && jobs.contains(&Job::ForeignKeys));
        assert_eq!(
            plan(&conn, IntegrityCheck::Quick).unwrap(),
            vec![Job::Whole, Job::ForeignKeys]
        );
    }

    #[test]
    fn a_sound_database_passes_both_checks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        drop(database(&path));
        check_file(&path, IntegrityCheck::Full).unwrap();
        check_file(&path, IntegrityCheck::Quick).unwrap();
    }

    #[test]
    fn an_index_that_does_not_match_its_table_is_caught_by_the_full_check() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let conn = database(&path);
        // Two indexes of the same table swap their b-trees: each is a
        // well-formed b-tree with the right number of entries, so only
        // looking the rows up finds that they hold the other column.
        let root = |name: &str| -> i64 {
            conn.query_row(
                "SELECT rootpage FROM sqlite_schema WHERE name = ?1",
                [name],
                |r| r.get(0),
            )
            .unwrap()
        };
        let (a, b) = (root("people_a"), root("people_b"));
        conn.execute_batch(&format!(
            "PRAGMA writable_schema=ON;
             UPDATE sqlite_schema SET rootpage = {b} WHERE name = 'people_a';
             UPDATE sqlite_schema SET rootpage = {a} WHERE name = 'people_b';"
        ))
        .unwrap();
        drop(conn);
        check_file(&path, IntegrityCheck::Quick).expect("the quick check does not look rows up");
        let text = full_check_fails_with(&path, "integrity check");
        assert!(
            text.contains("missing from index people_"),
            "names the index: {text}"
        );
    }

    #[test]
    fn pages_no_table_uses_are_caught_though_tables_are_checked_one_by_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let conn = database(&path);
        // Forgetting a table leaves its pages in the file, used by nothing:
        // only a check of the whole file sees that.
        conn.execute_batch(
            "PRAGMA writable_schema=ON; DELETE FROM sqlite_schema WHERE name = 'plain';",
        )
        .unwrap();
        drop(conn);
        for level in [IntegrityCheck::Full, IntegrityCheck::Quick] {
            let err = check_file(&path, level).unwrap_err();
            assert!(err.to_string().contains("never used"), "{err}");
        }
    }

    #[test]
    fn broken_foreign_keys_are_reported_with_the_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let conn = database(&path);
        conn.execute_batch("PRAGMA foreign_keys=OFF; INSERT INTO notes VALUES (99999, 'orphan');")
            .unwrap();
        drop(conn);
        let text = full_check_fails_with(&path, "foreign key check");
        assert!(
            text.contains("of notes refers to a missing row of people"),
            "{text}"
        );
    }
}
