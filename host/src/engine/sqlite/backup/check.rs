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
//! - For every table with an index, what the full check adds to the quick
//!   one, which is only about indexes: every row present in each index with
//!   the same values, the rowid at the end of each index record, `UNIQUE`
//!   indexes unique, `WITHOUT ROWID` keys in order.
//!   - For a rowid table whose indexes are all on plain columns with the
//!     `BINARY` collation (most tables), by fingerprints (see
//!     [`super::indexes`]): its rows, read in rowid ranges, against each of
//!     its indexes, read on its own. Every b-tree is read once, in order, in
//!     pieces of any size, where `integrity_check` looks every row up in
//!     every index, on one core.
//!   - For any other table, `PRAGMA integrity_check(T)`. A per-table check
//!     skips the freelist and the page accounting, which the quick check
//!     above covers.
//!
//!   For a rowid table without an index, `integrity_check(T)` does nothing
//!   the quick check has not done, so neither is run.
//! - `PRAGMA foreign_key_check(T)` of each table that declares a foreign
//!   key.
//!
//! Together these verify everything `PRAGMA integrity_check` followed by
//! `PRAGMA foreign_key_check` verifies (SQLite 3.50's `pragma.c` and
//! `sqlite3BtreeIntegrityCheck`); with [`IntegrityCheck::Quick`] only the
//! first and last run.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use rusqlite::{Connection, OpenFlags};

use super::indexes::{self, Fingerprint, Held, Indexed, Keys};
use crate::backup::error::RestoreError;
use crate::backup::{Progress, ProgressUnit};
use crate::engine::MetaError;
use crate::engine::sqlite::meta;
use crate::engine::sqlite::sql::quote_ident;
use crate::errors::chain_text;

/// The check run on a restored database (always followed by
/// `PRAGMA foreign_key_check`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IntegrityCheck {
    /// Everything `PRAGMA integrity_check` verifies, including that every
    /// index holds exactly its table's rows. It runs in pieces on several
    /// cores: `PRAGMA quick_check` of the whole file beside the
    /// verification of each table's indexes (by fingerprints of its rows
    /// and of each index, or `PRAGMA integrity_check(T)` for the tables
    /// fingerprints do not cover), which together cover the whole check.
    #[default]
    Full,
    /// `PRAGMA quick_check`: b-tree structure, page accounting, record
    /// formats, NOT NULL and CHECK constraints, in O(N); it skips comparing
    /// index contents with table rows, which the restore itself built from
    /// those rows with `CREATE INDEX` moments before.
    Quick,
}

/// Bytes of `INSERT` text the restore ran into each table (named as
/// `sqlite_schema` names it): how large each table is, wherever its pages
/// lie in the file.
pub(crate) type RowBytes = HashMap<String, u64>;

/// The most threads a check uses.
pub(crate) const MAX_WORKERS: usize = 2;

/// Page cache of the connection running the largest piece, in KiB. The
/// index lookups of the full check jump around the file, and this piece
/// holds the largest table: a larger cache saves the most reads here. With
/// each connection's cache its own (see `.cargo/config.toml`), the peak
/// memory of the restore stays bounded whatever the database's size.
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
    /// The entries the indexes of [`Plan::indexed`] table `table` must
    /// hold, from its rows with rowids `lo..=hi`.
    Rows { table: usize, lo: i64, hi: i64 },
    /// The entries index `index` of [`Plan::indexed`] table `table` holds.
    Entries { table: usize, index: usize },
    /// `PRAGMA foreign_key_check(table)`, of a table that declares a
    /// foreign key.
    ForeignKeys(String),
}

/// The pieces of a check, and the tables whose indexes are verified by
/// fingerprints.
#[derive(Debug)]
struct Plan {
    jobs: Vec<Job>,
    indexed: Vec<Indexed>,
}

/// What a piece found.
enum Found {
    /// Integrity problems, as SQLite words them (empty: none).
    Integrity(Vec<String>),
    /// Foreign-key violations: how many, and the first few described.
    ForeignKeys(u64, Vec<String>),
    /// What a [`Job::Rows`] piece says the table's indexes must hold.
    Expected {
        table: usize,
        sums: Vec<Fingerprint>,
    },
    /// What a [`Job::Entries`] piece read.
    Held {
        table: usize,
        index: usize,
        held: Held,
    },
}

/// Checks the database built at `target` from `dump`; returns its data
/// version. Fails with [`RestoreError::Check`] naming the problems SQLite
/// reports, or [`RestoreError::Build`] when the database cannot be read.
pub(crate) fn check(
    target: &Path,
    dump: &Path,
    level: IntegrityCheck,
    row_bytes: &RowBytes,
    progress: &mut dyn Progress,
) -> Result<Option<String>, RestoreError> {
    let build_err = |cause: rusqlite::Error| RestoreError::Build {
        path: target.to_path_buf(),
        cause: cause.into(),
    };
    progress.begin("checking", None, ProgressUnit::Rows);
    release_freed_memory();
    let conn = open(target, 2048).map_err(build_err)?;
    let plan = plan(&conn, level, row_bytes).map_err(build_err)?;
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, MAX_WORKERS)
        .min(plan.jobs.len());
    let keys = Keys::new();
    let found = run(target, &plan, workers, &keys).map_err(build_err)?;

    let mut integrity = Vec::new();
    let note = |integrity: &mut Vec<String>, line: String| {
        if integrity.len() < MAX_PROBLEMS && !integrity.contains(&line) {
            integrity.push(line);
        }
    };
    let mut violations = 0u64;
    let mut fk_details = Vec::new();
    let mut expected: Vec<Vec<Fingerprint>> = plan
        .indexed
        .iter()
        .map(|t| vec![Fingerprint::default(); t.indexes.len()])
        .collect();
    let mut held: Vec<Vec<Option<Fingerprint>>> = plan
        .indexed
        .iter()
        .map(|t| vec![None; t.indexes.len()])
        .collect();
    for found in found {
        match found {
            Found::Integrity(lines) => lines.into_iter().for_each(|l| note(&mut integrity, l)),
            Found::ForeignKeys(count, details) => {
                violations += count;
                fk_details.extend(details);
            }
            Found::Expected { table, sums } => {
                for (total, sum) in expected[table].iter_mut().zip(sums) {
                    total.merge(sum);
                }
            }
            Found::Held {
                table,
                index,
                held: h,
            } => {
                if let Some(duplicate) = h.duplicate {
                    note(&mut integrity, duplicate);
                }
                held[table][index] = Some(h.fingerprint);
            }
        }
    }
    // A piece that found a problem stops the others, so the fingerprints
    // are complete only if nothing was found.
    if integrity.is_empty() && violations == 0 {
        for (t, table) in plan.indexed.iter().enumerate() {
            let differs = (0..table.indexes.len()).any(|i| held[t][i] != Some(expected[t][i]));
            if differs {
                for line in index_mismatch(&conn, table, &expected[t], &held[t]) {
                    note(&mut integrity, line);
                }
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
            MetaError::Database(source) => match source.downcast::<rusqlite::Error>() {
                Ok(source) => build_err(source),
                Err(other) => RestoreError::Check {
                    path: dump.to_path_buf(),
                    check: "data version",
                    details: chain_text(&other),
                },
            },
            other => RestoreError::Check {
                path: dump.to_path_buf(),
                check: "data version",
                details: chain_text(&other),
            },
        })?
        .map(|v| v.to_string());
    progress.end();
    Ok(version)
}

/// Hands the memory the build freed back to the operating system before
/// the check's caches fill: the allocator would keep much of it, so the
/// process would hold both, and the peak would be their sum.
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
/// The cost of each is estimated from the pages of the b-trees it reads,
/// without reading the data. A table's pages are about the text inserted
/// into it (`row_bytes`): a dump's tables may be filled a piece of one
/// after a piece of another. An index is written whole by its
/// `CREATE INDEX`, so the pages from its root page to the next root page
/// are (nearly all) its own; so are a table's when the restore has no
/// count of its text. Looking a row up in an index costs far more than
/// reading it, hence the weight of index pages in `integrity_check(T)`.
fn plan(conn: &Connection, level: IntegrityCheck, row_bytes: &RowBytes) -> rusqlite::Result<Plan> {
    let page_count: u64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
    let page_size: u64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    let children = foreign_key_tables(conn)?;
    if level == IntegrityCheck::Quick {
        let mut jobs = vec![Job::Whole];
        jobs.extend(children.into_iter().map(|(t, _)| Job::ForeignKeys(t)));
        return Ok(Plan {
            jobs,
            indexed: Vec::new(),
        });
    }
    // (name, table it belongs to, root page, is an index)
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
    // Pages of each tree by name, and of each table's indexes together.
    let mut tree_pages: HashMap<&str, u64> = HashMap::new();
    let mut index_pages: HashMap<&str, u64> = HashMap::new();
    for (name, table, root, is_index) in &trees {
        let pages = match row_bytes.get(name) {
            Some(bytes) if !is_index => bytes.div_ceil(page_size.max(1)).max(1),
            _ => pages_of(*root),
        };
        tree_pages.insert(name, pages);
        if *is_index {
            *index_pages.entry(table).or_default() += pages_of(*root);
        }
    }
    let pages = |name: &str| tree_pages.get(name).copied().unwrap_or(0);

    let (indexed, others) = indexes::plan(conn)?;
    const INDEX_WEIGHT: u64 = 40;
    let mut weighted: Vec<(u64, Job)> = vec![(page_count, Job::Whole)];
    // Each row looks its parent up in each of its foreign keys' parent
    // tables.
    for (table, keys) in children {
        weighted.push((pages(&table) * keys, Job::ForeignKeys(table)));
    }
    for name in others {
        let weight = pages(&name) + INDEX_WEIGHT * index_pages.get(name.as_str()).unwrap_or(&0);
        weighted.push((weight, Job::Table(name)));
    }
    for (t, table) in indexed.iter().enumerate() {
        // Reading a row costs about as much as hashing one of its entries.
        let work = pages(&table.table) * (1 + table.indexes.len() as u64);
        if let Some((lo, hi)) = table.rowids {
            let ranges = rowid_ranges(lo, hi, work.div_ceil(PIECE_PAGES));
            let weight = work / ranges.len() as u64;
            for (lo, hi) in ranges {
                weighted.push((weight, Job::Rows { table: t, lo, hi }));
            }
        }
        for (i, index) in table.indexes.iter().enumerate() {
            weighted.push((2 * pages(&index.name), Job::Entries { table: t, index: i }));
        }
    }
    // Stable, so that equal weights keep the order above.
    weighted.sort_by_key(|w| std::cmp::Reverse(w.0));
    Ok(Plan {
        jobs: weighted.into_iter().map(|(_, job)| job).collect(),
        indexed,
    })
}

/// The estimated work (see [`plan`]) of one piece of a table's rows.
const PIECE_PAGES: u64 = 64 * 1024;

/// `lo..=hi` cut into at most `pieces` ranges of about equal length.
fn rowid_ranges(lo: i64, hi: i64, pieces: u64) -> Vec<(i64, i64)> {
    let span = i128::from(hi) - i128::from(lo) + 1;
    let n = i128::from(pieces.clamp(1, 64)).min(span.max(1));
    (0..n)
        .map(|k| {
            let start = i128::from(lo) + span * k / n;
            let end = i128::from(lo) + span * (k + 1) / n - 1;
            (start as i64, end as i64)
        })
        .collect()
}

/// Why the fingerprints of `table`'s indexes differ, in words, with
/// `integrity_check(T)`'s own report of the table.
fn index_mismatch(
    conn: &Connection,
    table: &Indexed,
    expected: &[Fingerprint],
    held: &[Option<Fingerprint>],
) -> Vec<String> {
    let mut lines = Vec::new();
    for (i, index) in table.indexes.iter().enumerate() {
        let want = expected[i];
        match held[i] {
            Some(got) if got == want => {}
            Some(got) if got.entries != want.entries => lines.push(format!(
                "index {} holds {} entries where table {} has {} rows",
                index.name, got.entries, table.table, want.entries
            )),
            Some(_) => lines.push(format!(
                "index {} does not hold the same values as the rows of table {}",
                index.name, table.table
            )),
            None => lines.push(format!("index {} was not read", index.name)),
        }
    }
    let sql = format!("PRAGMA integrity_check({})", quote_ident(&table.table));
    if let Ok(sqlite) = integrity_lines(conn, &sql) {
        lines.extend(sqlite);
    }
    lines
}

/// The tables that declare foreign keys, and how many each declares.
fn foreign_key_tables(conn: &Connection) -> rusqlite::Result<Vec<(String, u64)>> {
    let mut stmt = conn.prepare(
        "SELECT s.name, count(DISTINCT f.id) FROM main.sqlite_schema AS s,
                pragma_foreign_key_list(s.name) AS f
         WHERE s.type = 'table' GROUP BY s.name ORDER BY s.name",
    )?;
    let tables = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    tables.collect()
}

/// Runs `jobs` on `workers` threads, each with its own connection; returns
/// what each found, in the order of `jobs` (stopping early once a problem
/// is found).
fn run(target: &Path, plan: &Plan, workers: usize, keys: &Keys) -> rusqlite::Result<Vec<Found>> {
    let jobs = &plan.jobs;
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
            let found = match run_job(&conn, plan, &jobs[i], keys) {
                Ok(found) => found,
                Err(e) => {
                    stop.store(true, Ordering::Relaxed);
                    return Err(e);
                }
            };
            let problem = match &found {
                Found::Integrity(lines) => !lines.is_empty(),
                Found::ForeignKeys(n, _) => *n > 0,
                Found::Expected { .. } => false,
                Found::Held { held, .. } => held.duplicate.is_some(),
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
fn run_job(conn: &Connection, plan: &Plan, job: &Job, keys: &Keys) -> rusqlite::Result<Found> {
    let sql = match job {
        Job::Whole => format!("PRAGMA quick_check({MAX_PROBLEMS})"),
        Job::Table(name) => format!("PRAGMA integrity_check({})", quote_ident(name)),
        Job::Rows { table, lo, hi } => {
            let found = indexes::expected(conn, &plan.indexed[*table], *lo, *hi, keys);
            return Ok(unreadable(&plan.indexed[*table], found, |sums| {
                Found::Expected {
                    table: *table,
                    sums,
                }
            }));
        }
        Job::Entries { table, index } => {
            let found = indexes::held(conn, &plan.indexed[*table], *index, keys);
            return Ok(unreadable(&plan.indexed[*table], found, |held| {
                Found::Held {
                    table: *table,
                    index: *index,
                    held,
                }
            }));
        }
        Job::ForeignKeys(table) => {
            let sql = format!("PRAGMA foreign_key_check({})", quote_ident(table));
            let mut stmt = conn.prepare(&sql)?;
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
    Ok(Found::Integrity(integrity_lines(conn, &sql)?))
}

/// What reading `table` found; a b-tree SQLite cannot read (a malformed
/// record or page) is a problem of the database, named with the table.
fn unreadable<T>(
    table: &Indexed,
    found: rusqlite::Result<T>,
    ok: impl FnOnce(T) -> Found,
) -> Found {
    match found {
        Ok(found) => ok(found),
        Err(e) => Found::Integrity(vec![format!("table {}: {e}", table.table)]),
    }
}

/// The lines of an integrity-check pragma other than `ok`.
fn integrity_lines(conn: &Connection, sql: &str) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare(sql)?;
    let mut rows = stmt.query([])?;
    let mut problems = Vec::new();
    while let Some(row) = rows.next()? {
        let line: String = row.get(0)?;
        if line != "ok" && problems.len() < MAX_PROBLEMS {
            problems.push(line);
        }
    }
    Ok(problems)
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

    /// A path for a database in a new temporary folder (removed when the
    /// folder is dropped).
    fn temp_db() -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        (dir, path)
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
        check(
            path,
            Path::new("test.dump"),
            level,
            &RowBytes::new(),
            &mut NoProgress,
        )
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
    fn the_plan_reads_rowid_tables_against_their_indexes_and_leaves_the_others_to_sqlite() {
        let (_dir, path) = temp_db();
        drop(database(&path));
        let conn = open(&path, 1024).unwrap();
        let plan = plan(&conn, IntegrityCheck::Full, &RowBytes::new()).unwrap();
        let jobs = &plan.jobs;
        let indexed: Vec<&str> = plan.indexed.iter().map(|t| t.table.as_str()).collect();
        assert_eq!(indexed, ["notes", "people"], "{plan:?}");
        let tables: Vec<&str> = jobs
            .iter()
            .filter_map(|j| match j {
                Job::Table(name) => Some(name.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(
            tables,
            ["tags"],
            "WITHOUT ROWID: integrity_check(T): {jobs:?}"
        );
        let entries = jobs
            .iter()
            .filter(|j| matches!(j, Job::Entries { .. }))
            .count();
        assert_eq!(entries, 3, "one piece for each index: {jobs:?}");
        for t in 0..plan.indexed.len() {
            assert!(
                jobs.iter()
                    .any(|j| matches!(j, Job::Rows { table, .. } if *table == t)),
                "{jobs:?}"
            );
        }
        let notes = Job::ForeignKeys("notes".into());
        assert!(jobs.contains(&Job::Whole) && jobs.contains(&notes));
        assert_eq!(
            jobs.iter()
                .filter(|j| matches!(j, Job::ForeignKeys(_)))
                .count(),
            1,
            "only notes declares a foreign key: {jobs:?}"
        );
        let quick = super::plan(&conn, IntegrityCheck::Quick, &RowBytes::new()).unwrap();
        assert_eq!(quick.jobs, vec![Job::Whole, notes]);
    }

    #[test]
    fn a_tables_size_comes_from_the_text_the_restore_inserted_into_it() {
        // A dump may fill its tables a piece of one after a piece of
        // another: the pages between two root pages then say nothing of a
        // table's size, the text inserted into it does.
        let (_dir, path) = temp_db();
        drop(database(&path));
        let conn = open(&path, 1024).unwrap();
        let small = plan(&conn, IntegrityCheck::Full, &RowBytes::new()).unwrap();
        let notes = small
            .indexed
            .iter()
            .position(|t| t.table == "notes")
            .unwrap();
        let pieces = |plan: &Plan| {
            plan.jobs
                .iter()
                .filter(|j| matches!(j, Job::Rows { table, .. } if *table == notes))
                .count()
        };
        assert_eq!(pieces(&small), 1);
        let bytes = RowBytes::from([("notes".to_string(), 3 * PIECE_PAGES * 4096)]);
        let large = plan(&conn, IntegrityCheck::Full, &bytes).unwrap();
        assert_eq!(
            pieces(&large),
            6,
            "its rows read in pieces: {:?}",
            large.jobs
        );
        // Its foreign keys' lookups, then its pieces, before the rest.
        assert_eq!(large.jobs[0], Job::ForeignKeys("notes".into()));
        assert!(
            large.jobs[1..7]
                .iter()
                .all(|j| matches!(j, Job::Rows { table, .. } if *table == notes)),
            "the largest pieces first: {:?}",
            large.jobs
        );
    }

    #[test]
    fn tables_with_an_index_fingerprints_do_not_cover_are_left_to_integrity_check() {
        let (_dir, path) = temp_db();
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE nocase(a TEXT); CREATE INDEX nocase_a ON nocase(a COLLATE NOCASE);
             CREATE TABLE expr(a TEXT); CREATE INDEX expr_a ON expr(lower(a));
             CREATE TABLE part(a TEXT); CREATE INDEX part_a ON part(a) WHERE a > 'm';
             CREATE TABLE generated(a INTEGER, b AS (a * 2)); CREATE INDEX generated_a ON generated(a);
             CREATE TABLE ipk(id INTEGER PRIMARY KEY, a); CREATE INDEX ipk_id ON ipk(id, a);
             CREATE TABLE shadowed(rowid, oid, _rowid_); CREATE INDEX shadowed_oid ON shadowed(oid);
             CREATE TABLE twice(a, b); CREATE INDEX twice_aba ON twice(a, b, a);
             CREATE TABLE mixed(a, b); CREATE INDEX mixed_a ON mixed(a);
                                       CREATE INDEX mixed_b ON mixed(b COLLATE RTRIM);
             CREATE TABLE covered(a, b UNIQUE); CREATE INDEX covered_ab ON covered(a DESC, b);
             CREATE TABLE bare(a);
             INSERT INTO covered VALUES (1, 2), (3, 4);
             INSERT INTO ipk VALUES (5, 'x'), (-7, 'y');",
        )
        .unwrap();
        let (indexed, mut others) = indexes::plan(&conn).unwrap();
        let indexed: Vec<&str> = indexed.iter().map(|t| t.table.as_str()).collect();
        // An index on the INTEGER PRIMARY KEY holds the rowid, which the
        // table's column reads as well.
        assert_eq!(indexed, ["covered", "ipk"]);
        others.sort();
        assert_eq!(
            others,
            [
                "expr",
                "generated",
                "mixed",
                "nocase",
                "part",
                "shadowed",
                "twice"
            ]
        );
        drop(conn);
        check_file(&path, IntegrityCheck::Full).unwrap();
    }

    #[test]
    fn values_an_index_lookup_calls_equal_are_equal_and_all_others_distinct() {
        let (_dir, path) = temp_db();
        let conn = Connection::open(&path).unwrap();
        // No affinity: every value is stored as given. The UNIQUE index
        // holds values SQLite tells apart; the other holds equal ones too.
        conn.execute_batch(
            "CREATE TABLE v(u UNIQUE, d, r REAL);
             CREATE INDEX v_d ON v(d, u);
             CREATE INDEX v_r ON v(r);
             INSERT INTO v VALUES
               (0, 0, -0.0), (0.5, 0.0, 0.0), (1, 1.0, 1), ('1', '1', 1.0), (x'31', x'31', NULL),
               (9223372036854775807, 9223372036854775807, 9.3e18),
               (-9223372036854775808, -9.223372036854775808e18, -1e308),
               (9.2233720368547758e18, 1e-310, 1e-310), (NULL, NULL, 4.9e-324),
               (NULL, 'a''b', 'x'), ('', '', ''), (x'', x'', x''), (-1.5, 'tab' || char(9) || 'nl' || char(10), 2.5);",
        )
        .unwrap();
        drop(conn);
        check_file(&path, IntegrityCheck::Full).unwrap();
    }

    #[test]
    fn a_unique_index_holding_a_key_twice_is_caught_by_the_full_check() {
        let (_dir, path) = temp_db();
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE u(id INTEGER PRIMARY KEY, x, y);
             WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 500)
             INSERT INTO u SELECT i, i, i FROM c;
             UPDATE u SET x = 3.0, y = NULL WHERE id = 250;
             INSERT INTO u VALUES (501, NULL, 7), (502, NULL, 7);
             CREATE INDEX u_x ON u(x);
             CREATE INDEX u_xy ON u(x, y);
             PRAGMA writable_schema=ON;
             UPDATE sqlite_schema SET sql = 'CREATE UNIQUE INDEX u_xy ON u(x, y)' WHERE name = 'u_xy';",
        )
        .unwrap();
        drop(conn);
        // Keys holding a NULL are unique whatever they are: (NULL, 7) twice,
        // and (3.0, NULL) beside (3, 3).
        check_file(&path, IntegrityCheck::Full).unwrap();
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "PRAGMA writable_schema=ON;
             UPDATE sqlite_schema SET sql = 'CREATE UNIQUE INDEX u_x ON u(x)' WHERE name = 'u_x';",
        )
        .unwrap();
        drop(conn);
        check_file(&path, IntegrityCheck::Quick).expect("the quick check does not read keys");
        let text = full_check_fails_with(&path, "integrity check");
        assert!(text.contains("non-unique entry in index u_x"), "{text}");
    }

    /// (The fingerprints find it too, see `indexes::tests`; the quick check,
    /// counting entries, finds it first.)
    #[test]
    fn an_index_missing_rows_is_caught_and_named() {
        let (_dir, path) = temp_db();
        let conn = database(&path);
        conn.execute_batch(
            "CREATE INDEX people_ab ON people(a, b) WHERE id % 100 <> 7;
             PRAGMA writable_schema=ON;
             UPDATE sqlite_schema SET sql = 'CREATE INDEX people_ab ON people(a, b)'
              WHERE name = 'people_ab';",
        )
        .unwrap();
        drop(conn);
        let text = full_check_fails_with(&path, "integrity check");
        assert!(text.contains("index people_ab"), "{text}");
    }

    #[test]
    fn a_sound_database_passes_both_checks() {
        let (_dir, path) = temp_db();
        drop(database(&path));
        check_file(&path, IntegrityCheck::Full).unwrap();
        check_file(&path, IntegrityCheck::Quick).unwrap();
    }

    #[test]
    fn an_index_that_does_not_match_its_table_is_caught_by_the_full_check() {
        let (_dir, path) = temp_db();
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
            text.contains(
                "index people_a does not hold the same values as the rows of table people"
            ),
            "{text}"
        );
        assert!(
            text.contains("missing from index people_"),
            "SQLite's own words follow: {text}"
        );
    }

    #[test]
    fn pages_no_table_uses_are_caught_though_tables_are_checked_one_by_one() {
        let (_dir, path) = temp_db();
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
        let (_dir, path) = temp_db();
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
