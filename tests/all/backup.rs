//! dbbackup / dbrestore: exact round trips, interoperability with the real
//! sqlite3 shell, and every way a dump or a restore can go wrong.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use proptest::prelude::*;
use rusqlite::Connection;
use rusqlite::types::ValueRef;
use sha2::{Digest, Sha256};
use uplift::backup::{
    self, BackupFileError, BackupKind, BackupOptions, BackupStatus, NoProgress, RestoreError,
    RestoreOptions,
};
use uplift::home::Home;

use crate::support::{file_names, run_cmd, sqlite3, stderr, stdout, uplift};

// ---------------------------------------------------------------------------
// Helpers

/// A home in a temporary folder.
fn temp_home() -> (tempfile::TempDir, Home) {
    let dir = tempfile::tempdir().expect("temp dir");
    let home = Home::new(dir.path().join("home"));
    home.create().expect("home");
    (dir, home)
}

/// Every table's rows, value by value in a form that tells every storage
/// class and every float bit apart, plus the schema and the header pragmas.
fn snapshot(conn: &Connection) -> Vec<String> {
    let mut out = Vec::new();
    let mut schema = conn
        .prepare(
            "SELECT type, name, tbl_name, sql FROM sqlite_schema
             WHERE name <> 'sqlite_stat4' ORDER BY type, name",
        )
        .unwrap();
    let rows = schema
        .query_map([], |r| {
            Ok(format!(
                "schema {} {} {} {:?}",
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<String>>(3)?
            ))
        })
        .unwrap();
    for row in rows {
        out.push(row.unwrap());
    }
    for pragma in ["user_version", "application_id"] {
        let v: i64 = conn
            .query_row(&format!("PRAGMA {pragma}"), [], |r| r.get(0))
            .unwrap();
        out.push(format!("{pragma} {v}"));
    }
    let tables: Vec<(String, bool, bool)> = conn
        .prepare(
            "SELECT name, wr, type = 'virtual' FROM pragma_table_list
             WHERE schema = 'main' AND type IN ('table', 'virtual', 'shadow')
               AND name NOT IN ('sqlite_schema', 'sqlite_temp_schema', 'sqlite_stat4') ORDER BY name",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? != 0, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for (table, without_rowid, _virtual) in tables {
        let quoted = table.replace('"', "\"\"");
        let select = if without_rowid || table.starts_with("sqlite_") {
            format!("SELECT * FROM \"{quoted}\"")
        } else {
            format!("SELECT rowid, * FROM \"{quoted}\"")
        };
        let mut stmt = conn.prepare(&select).unwrap();
        let n = stmt.column_count();
        let mut rows: Vec<String> = stmt
            .query_map([], |r| {
                let mut line = format!("{table}:");
                for i in 0..n {
                    line.push(' ');
                    line.push_str(&describe(r.get_ref(i)?));
                }
                Ok(line)
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        rows.sort();
        out.extend(rows);
    }
    out
}

fn describe(v: ValueRef<'_>) -> String {
    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }
    match v {
        ValueRef::Null => "null".into(),
        ValueRef::Integer(i) => format!("int:{i}"),
        ValueRef::Real(f) => format!("real:{:016x}", f.to_bits()),
        ValueRef::Text(t) => format!("text:{}", hex(t)),
        ValueRef::Blob(b) => format!("blob:{}", hex(b)),
    }
}

fn assert_same_database(expected: &Path, actual: &Path) {
    let a = snapshot(&Connection::open(expected).unwrap());
    let b = snapshot(&Connection::open(actual).unwrap());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(
            x.chars().take(300).collect::<String>(),
            y.chars().take(300).collect::<String>()
        );
    }
    assert_eq!(a.len(), b.len(), "different numbers of rows and objects");
    assert!(a == b, "databases differ");
}

/// A database with everything the issue lists: every storage class at its
/// edges, rowids without an alias, WITHOUT ROWID, AUTOINCREMENT, generated
/// columns, views on views, triggers, partial indexes, FTS5, sqlite_stat1,
/// user_version and application_id, and a foreign-key cycle. `portable`
/// leaves out what sqlite3 3.40's own .dump cannot carry (-0.0, text with
/// NUL bytes, the two pragmas).
fn rich_database(path: &Path, portable: bool) {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(
        "PRAGMA foreign_keys = ON;
         CREATE TABLE parent(id INTEGER PRIMARY KEY, child_id INTEGER REFERENCES child(id) DEFERRABLE INITIALLY DEFERRED,
                             name TEXT NOT NULL);
         CREATE TABLE child(id INTEGER PRIMARY KEY, parent_id INTEGER NOT NULL REFERENCES parent(id));
         CREATE TABLE vals(v);
         CREATE TABLE typed(i INTEGER, r REAL, t TEXT, b BLOB, n NUMERIC);
         CREATE TABLE seq(id INTEGER PRIMARY KEY AUTOINCREMENT, note TEXT);
         CREATE TABLE kv(k TEXT PRIMARY KEY, v) WITHOUT ROWID;
         CREATE TABLE gen(a INTEGER, b INTEGER GENERATED ALWAYS AS (a * 2) VIRTUAL,
                          c TEXT GENERATED ALWAYS AS (upper(d)) STORED, d TEXT);
         CREATE TABLE desc_pk(x INTEGER PRIMARY KEY DESC, y);
         CREATE TABLE audit(msg TEXT);
         CREATE TRIGGER parent_audit AFTER INSERT ON parent BEGIN
             INSERT INTO audit VALUES ('inserted ' || new.name || '; really');
         END;
         CREATE VIEW v1 AS SELECT id, name FROM parent;
         CREATE VIEW v2 AS SELECT count(*) AS n FROM v1;
         CREATE INDEX typed_i ON typed(i);
         CREATE INDEX typed_partial ON typed(t) WHERE t IS NOT NULL AND i > 0;
         CREATE UNIQUE INDEX parent_name ON parent(name);
         CREATE VIRTUAL TABLE docs USING fts5(title, body);
         BEGIN;
         INSERT INTO parent VALUES (1, 1, 'first'), (2, 2, 'second');
         INSERT INTO child VALUES (1, 1), (2, 2);
         COMMIT;
         INSERT INTO vals(rowid, v) VALUES
           (1, 0), (2, 1), (3, -1), (4, 9223372036854775807), (5, -9223372036854775808),
           (6, 9007199254740993), (7, 0.0), (8, 0.1), (9, 1.7976931348623157e308), (10, 4.9406564584124654e-324),
           (11, 2.2250738585072009e-308), (12, 9e999), (13, -9e999), (14, 'it''s \"quoted\"'),
           (15, 'line' || char(10) || 'break' || char(13, 10) || 'crlf' || char(13)), (16, ''), (17, X''),
           (18, X'00ff10'), (19, NULL), (20, 'héllo ✓ 𝄞'), (21, CAST(X'c328ff' AS TEXT)),
           (100, -123.456e-7), (1000, 3.0), (1001, '12'), (1002, '-- not a comment; ''x'''),
           (1003, 'a' || char(9) || 'tab');
         DELETE FROM vals WHERE rowid = 19;
         INSERT INTO typed VALUES (1, 1.5, 'one', X'01', 1), (2, 2, 'two', NULL, '2.50'), (-3, NULL, NULL, X'', 'abc'),
                                  (4, 1e-310, 'four', randomblob(10), 1e20);
         INSERT INTO seq(note) VALUES ('a'), ('b'), ('c');
         DELETE FROM seq WHERE id = 3;
         INSERT INTO kv VALUES ('b', 2), ('a', X'aa'), ('c', 'three');
         INSERT INTO gen(a, d) VALUES (1, 'x'), (2, 'y');
         INSERT INTO desc_pk VALUES (10, 'ten'), (5, 'five');
         INSERT INTO docs(title, body) VALUES ('hello', 'the quick brown fox'), ('world', 'jumps over; the dog');
         INSERT INTO typed(i, b) VALUES (5, randomblob(3000000));
         ANALYZE;",
    )
    .unwrap();
    conn.execute("DELETE FROM desc_pk WHERE x = 5", []).unwrap();
    conn.execute(
        "INSERT INTO desc_pk(rowid, x, y) VALUES (77, 5, 'five again')",
        [],
    )
    .unwrap();
    if !portable {
        conn.execute_batch(
            "PRAGMA user_version = 12; PRAGMA application_id = 1431323732;
             INSERT INTO vals(rowid, v) VALUES (30, -0.0), (31, 'nul' || char(0) || 'inside'), (32, char(0));",
        )
        .unwrap();
    }
}

fn backup_of(db: &Path, dir: &Path, options: &BackupOptions) -> backup::BackupFile {
    backup::back_up_file(db, dir, options, &mut NoProgress).unwrap()
}

fn manual() -> BackupOptions {
    BackupOptions::new(BackupKind::Manual)
}

/// Writes a dump in uplift's format with a correct checksum around `body`
/// (as a planted file would be).
fn planted_dump(path: &Path, body: &str) {
    let text = format!(
        "-- uplift-dump-format: 1\n-- data-version: 1.0\n-- kind: manual\n-- created: 2024-01-01T00:00:00Z\n\
         -- sqlite-version: 3.50.2\n{body}"
    );
    let digest = Sha256::digest(text.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::write(path, format!("{text}-- uplift-sha256: {hex}\n")).unwrap();
}

fn restore_file(home: &Home, file: &Path) -> Result<backup::RestoreReport, RestoreError> {
    backup::restore(home, file, &RestoreOptions::default(), &mut NoProgress)
}

/// A home with a small database in it, and the database's bytes.
fn home_with_database() -> (tempfile::TempDir, Home, Vec<u8>) {
    let (dir, home) = temp_home();
    let conn = Connection::open(home.db_path()).unwrap();
    conn.execute_batch(
        "CREATE TABLE keep(x); INSERT INTO keep VALUES ('the current database');
         CREATE TABLE uplift_meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
         INSERT INTO uplift_meta VALUES ('data_version', '1.0');",
    )
    .unwrap();
    drop(conn);
    let bytes = std::fs::read(home.db_path()).unwrap();
    (dir, home, bytes)
}

// ---------------------------------------------------------------------------
// Round trips

#[test]
fn every_kind_of_value_and_object_round_trips_exactly() {
    let (_dir, home) = temp_home();
    let source = home.root().join("source.sqlite3");
    rich_database(&source, false);
    let file = backup_of(&source, &home.root().join("out"), &manual());
    assert_eq!(
        file.connections, 2,
        "nothing waits to write: a second connection reads the same snapshot"
    );
    assert!(
        file.path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("db-unversioned_")
    );

    let report = restore_file(&home, &file.path).unwrap();
    assert!(report.verified);
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    assert!(
        report.safety_backup.is_none(),
        "there was no database to back up"
    );
    assert_same_database(&source, &home.db_path());

    // The full-text index works, the trigger did not fire on restored rows.
    let conn = Connection::open(home.db_path()).unwrap();
    let hits: i64 = conn
        .query_row(
            "SELECT count(*) FROM docs WHERE docs MATCH 'fox'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(hits, 1);
    let audits: i64 = conn
        .query_row("SELECT count(*) FROM audit", [], |r| r.get(0))
        .unwrap();
    assert_eq!(audits, 2);
    let z: f64 = conn
        .query_row("SELECT v FROM vals WHERE rowid = 30", [], |r| r.get(0))
        .unwrap();
    assert!(z == 0.0 && z.is_sign_negative(), "-0.0 keeps its sign");
}

#[test]
fn compressed_backups_round_trip_and_verify() {
    let (_dir, home) = temp_home();
    let source = home.root().join("source.sqlite3");
    rich_database(&source, false);
    let mut options = manual();
    options.compress = true;
    let file = backup_of(&source, &home.backups_dir(), &options);
    assert!(file.path.to_string_lossy().ends_with(".dump.zst"));
    assert!(file.size < file.text_size, "it is compressed");
    assert_eq!(
        std::fs::read(&file.path).unwrap()[..4],
        [0x28, 0xb5, 0x2f, 0xfd],
        "a zstd frame"
    );
    let entries = backup::list(&home.backups_dir()).unwrap();
    assert_eq!(entries[0].status, BackupStatus::Verified);
    let options = RestoreOptions {
        check: backup::IntegrityCheck::Quick,
        ..RestoreOptions::default()
    };
    backup::restore(&home, &file.path, &options, &mut NoProgress).unwrap();
    assert_same_database(&source, &home.db_path());
}

/// `sqlite3 restored ".read dump"` succeeds without a word on stderr and
/// gives the same database as `source`.
fn assert_sqlite3_restores(dump: &Path, restored: &Path, source: &Path) {
    let output = run_cmd(
        sqlite3()
            .arg(restored)
            .arg(format!(".read {}", dump.display())),
    );
    assert!(
        output.status.success() && output.stderr.is_empty(),
        "{}",
        stderr(&output)
    );
    assert_same_database(source, restored);
}

#[test]
fn sqlite3_restores_our_dump_to_the_same_database() {
    let (_dir, home) = temp_home();
    let source = home.root().join("source.sqlite3");
    rich_database(&source, false);
    let file = backup_of(&source, &home.root().join("out"), &manual());
    let restored = home.root().join("by-sqlite3.sqlite3");
    assert_sqlite3_restores(&file.path, &restored, &source);
}

#[test]
fn we_restore_a_dump_made_by_sqlite3_with_a_warning() {
    let (_dir, home) = temp_home();
    let source = home.root().join("source.sqlite3");
    rich_database(&source, true);
    let dump = home.root().join("by-sqlite3.sql");
    let output = run_cmd(sqlite3().arg(&source).arg(".dump --preserve-rowids"));
    assert!(output.status.success(), "{}", stderr(&output));
    std::fs::write(&dump, &output.stdout).unwrap();

    let report = restore_file(&home, &dump).unwrap();
    assert!(!report.verified);
    assert!(
        report.warnings[0].contains("cannot be verified"),
        "{:?}",
        report.warnings
    );
    assert_same_database(&source, &home.db_path());
}

#[test]
fn we_restore_control_characters_as_older_and_newer_sqlite3_shells_dump_them() {
    // sqlite3 3.50 and later write text with control characters with
    // unistr(), earlier shells with replace(); both are restored, on the
    // fast path and (for the forms it leaves to SQLite) by SQLite itself.
    let (_dir, home) = temp_home();
    let dump = home.root().join("shells.sql");
    std::fs::write(
        &dump,
        "PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\n\
         CREATE TABLE t(id INTEGER PRIMARY KEY, s TEXT);\n\
         INSERT INTO t VALUES(1,unistr('one\\u000atwo\\u000d\\u000a\\u0009back\\\\slash \\u00e9 \\U0001f600 it''s'));\n\
         INSERT INTO t VALUES(2,replace('one\\ntwo','\\n',char(10)));\n\
         INSERT INTO t VALUES(3,replace(replace('one\\r\\ntwo\\n','\\r',char(13)),'\\n',char(10)));\n\
         INSERT INTO t VALUES(4,unistr('nul \\u0000 inside'));\n\
         INSERT INTO t(id,s) VALUES(5,upper(unistr('\\u0061')));\n\
         COMMIT;\n",
    )
    .unwrap();
    let report = restore_file(&home, &dump).unwrap();
    assert!(!report.verified);
    let conn = Connection::open(home.db_path()).unwrap();
    let rows: Vec<(i64, Vec<u8>)> = conn
        .prepare("SELECT id, CAST(s AS BLOB) FROM t ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let expected: Vec<(i64, Vec<u8>)> = vec![
        (1, "one\ntwo\r\n\tback\\slash \u{e9} \u{1f600} it's".into()),
        (2, b"one\ntwo".to_vec()),
        (3, b"one\r\ntwo\n".to_vec()),
        (4, b"nul \0 inside".to_vec()),
        (5, b"A".to_vec()),
    ];
    assert_eq!(rows, expected);
}

#[test]
fn restore_refuses_a_full_text_index_that_does_not_match_its_documents() {
    // A dump carries an FTS5 table's shadow tables as data: a document
    // added to the content table behind the index's back is corruption the
    // integrity check must catch.
    let (_dir, home, bytes) = home_with_database();
    let file = home.root().join("fts.dump");
    planted_dump(
        &file,
        "PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\n\
         CREATE VIRTUAL TABLE docs USING fts5(body);\n\
         INSERT INTO docs(body) VALUES('the quick brown fox');\n\
         INSERT INTO docs_content VALUES(2,'not in the index');\n\
         COMMIT;\n",
    );
    let err = restore_file(&home, &file).unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(
            err,
            RestoreError::Check {
                check: "integrity check",
                ..
            }
        ),
        "{text}"
    );
    assert!(text.contains("docs"), "names the table: {text}");
    let after = file_names(&home.backups_dir());
    assert_untouched(&home, &bytes, &after);
}

/// A column type and the values a random table may hold.
#[derive(Debug, Clone)]
enum Val {
    Null,
    Int(i64),
    Real(f64),
    Text(Vec<u8>),
    Blob(Vec<u8>),
}

fn val() -> impl Strategy<Value = Val> {
    prop_oneof![
        Just(Val::Null),
        any::<i64>().prop_map(Val::Int),
        prop_oneof![Just(i64::MIN), Just(i64::MAX), -3i64..3].prop_map(Val::Int),
        any::<u64>()
            .prop_map(f64::from_bits)
            .prop_filter("SQLite stores no NaN", |f| !f.is_nan())
            .prop_map(Val::Real),
        prop_oneof![
            Just(0.0),
            Just(-0.0),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
            Just(f64::MIN_POSITIVE / 3.0)
        ]
        .prop_map(Val::Real),
        proptest::collection::vec(any::<u8>(), 0..24).prop_map(Val::Text),
        "[a-z'\"\n\r;\\-\\\\ ]{0,16}".prop_map(|s| Val::Text(s.into_bytes())),
        proptest::collection::vec(any::<u8>(), 0..24).prop_map(Val::Blob),
    ]
}

#[derive(Debug, Clone)]
struct RandomTable {
    /// 0: rowid alias, 1: plain rowid, 2: WITHOUT ROWID.
    layout: u8,
    types: Vec<&'static str>,
    rows: Vec<(i64, Vec<Val>)>,
}

fn random_table() -> impl Strategy<Value = RandomTable> {
    (
        0u8..3,
        proptest::collection::vec(
            prop::sample::select(vec!["", "INTEGER", "REAL", "TEXT", "BLOB", "NUMERIC"]),
            1..5,
        ),
    )
        .prop_flat_map(|(layout, types)| {
            let n = types.len();
            let rows = proptest::collection::vec(
                (any::<i64>(), proptest::collection::vec(val(), n)),
                0..12,
            );
            (Just(layout), Just(types), rows).prop_map(|(layout, types, rows)| RandomTable {
                layout,
                types,
                rows,
            })
        })
}

fn create_random(conn: &Connection, index: usize, table: &RandomTable) {
    let columns: Vec<String> = table
        .types
        .iter()
        .enumerate()
        .map(|(i, t)| format!("c{i} {t}"))
        .collect();
    let sql = match table.layout {
        0 => format!(
            "CREATE TABLE t{index}(id INTEGER PRIMARY KEY, {})",
            columns.join(", ")
        ),
        1 => format!("CREATE TABLE t{index}({})", columns.join(", ")),
        _ => format!(
            "CREATE TABLE t{index}(id INTEGER PRIMARY KEY, {}) WITHOUT ROWID",
            columns.join(", ")
        ),
    };
    conn.execute(&sql, []).unwrap();
    for (n, (key, values)) in table.rows.iter().enumerate() {
        let mut exprs = Vec::new();
        let mut params: Vec<rusqlite::types::Value> = Vec::new();
        for v in values {
            params.push(match v {
                Val::Null => rusqlite::types::Value::Null,
                Val::Int(i) => rusqlite::types::Value::Integer(*i),
                Val::Real(f) => rusqlite::types::Value::Real(*f),
                Val::Text(t) | Val::Blob(t) => rusqlite::types::Value::Blob(t.clone()),
            });
            let p = params.len();
            exprs.push(if matches!(v, Val::Text(_)) {
                format!("CAST(?{p} AS TEXT)")
            } else {
                format!("?{p}")
            });
        }
        // Keys: unique (the row number) for the alias and WITHOUT ROWID
        // layouts, random for the rowid.
        let key = if table.layout == 1 {
            *key
        } else {
            n as i64 * 7 - 20
        };
        let sql = format!(
            "INSERT OR REPLACE INTO t{index}(rowid, {}) VALUES ({key}, {})",
            (0..values.len())
                .map(|i| format!("c{i}"))
                .collect::<Vec<_>>()
                .join(", "),
            exprs.join(", ")
        );
        let sql = if table.layout == 2 {
            sql.replacen("(rowid, ", "(id, ", 1)
        } else {
            sql
        };
        conn.execute(&sql, rusqlite::params_from_iter(params))
            .unwrap();
    }
    // An index over every column: the restore's check compares it with the
    // rows, whatever values they hold.
    if !table.types.is_empty() {
        let all: Vec<String> = (0..table.types.len()).map(|i| format!("c{i}")).collect();
        conn.execute(
            &format!("CREATE INDEX t{index}_all ON t{index}({})", all.join(", ")),
            [],
        )
        .unwrap();
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn random_tables_round_trip_bit_for_bit(tables in proptest::collection::vec(random_table(), 1..4), compress: bool) {
        let (_dir, home) = temp_home();
        let source = home.root().join("source.sqlite3");
        {
            let conn = Connection::open(&source).unwrap();
            for (i, table) in tables.iter().enumerate() {
                create_random(&conn, i, table);
            }
        }
        let mut options = manual();
        options.compress = compress;
        let file = backup_of(&source, &home.backups_dir(), &options);
        restore_file(&home, &file.path).unwrap();
        let expected = snapshot(&Connection::open(&source).unwrap());
        let actual = snapshot(&Connection::open(home.db_path()).unwrap());
        prop_assert_eq!(expected, actual);
    }

    #[test]
    fn floats_are_written_in_a_form_sqlite_reads_back_exactly(bits: u64) {
        let f = f64::from_bits(bits);
        prop_assume!(!f.is_nan());
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db.sqlite3");
        let conn = Connection::open(&db).unwrap();
        conn.execute("CREATE TABLE t(v)", []).unwrap();
        conn.execute("INSERT INTO t VALUES (?1)", [f]).unwrap();
        let file = backup::back_up_file(&db, &dir.path().join("backups"), &manual(), &mut NoProgress).unwrap();
        let text = std::fs::read_to_string(&file.path).unwrap();
        let literal = text.lines().find(|l| l.starts_with("INSERT")).unwrap()
            .trim_start_matches("INSERT INTO \"t\" VALUES(").trim_end_matches(");").to_string();
        let back: f64 = conn.query_row(&format!("SELECT {literal}"), [], |r| r.get(0)).unwrap();
        prop_assert_eq!(back.to_bits(), f.to_bits(), "{} read back as {}", literal, back);
    }
}

#[test]
fn sqlite3_shell_and_library_read_our_floats_exactly() {
    // Many random bit patterns (normal, subnormal, huge), and decimals of
    // 1 to 15 digits at every scale a short decimal may have, which a dump
    // writes as plain decimals when every SQLite reads them back exactly:
    // read by the shell (3.40: long double division), by the bundled
    // library (3.50: long double steps) and by our restore.
    let (_dir, home) = temp_home();
    let source = home.root().join("floats.sqlite3");
    let conn = Connection::open(&source).unwrap();
    conn.execute("CREATE TABLE f(v)", []).unwrap();
    let mut state = 0x9e3779b97f4a7c15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let tx = conn.unchecked_transaction().unwrap();
    for i in 0..20_000u64 {
        let bits = next();
        let bits = if i % 4 == 0 { bits >> 12 } else { bits }; // a quarter subnormal
        let f = f64::from_bits(bits);
        if !f.is_nan() {
            tx.execute("INSERT INTO f VALUES (?1)", [f]).unwrap();
        }
    }
    for i in 0..20_000u64 {
        let r = next();
        let digits = r % 10u64.pow(1 + (r >> 58) as u32 % 15);
        let f: f64 = format!("{digits}e-{}", 1 + i % 22).parse().unwrap();
        tx.execute(
            "INSERT INTO f VALUES (?1)",
            [if i % 2 == 0 { f } else { -f }],
        )
        .unwrap();
    }
    tx.commit().unwrap();
    drop(conn);
    let file = backup_of(&source, &home.backups_dir(), &manual());
    let text = std::fs::read_to_string(&file.path).unwrap();
    let short = text
        .lines()
        .map(|l| l.trim_start_matches("INSERT INTO \"f\" VALUES"))
        .filter(|l| l.starts_with('(') && l.contains('.') && !l.contains(['/', '*', 'e']))
        .count();
    assert!(short > 10_000, "most decimals are written short: {short}");

    let restored = home.root().join("by-sqlite3.sqlite3");
    assert_sqlite3_restores(&file.path, &restored, &source);
    let by_library = home.root().join("by-library.sqlite3");
    Connection::open(&by_library)
        .unwrap()
        .execute_batch(&text)
        .unwrap();
    assert_same_database(&source, &by_library);
    restore_file(&home, &file.path).unwrap();
    assert_same_database(&source, &home.db_path());
}

#[test]
fn a_large_blob_round_trips() {
    let (_dir, home) = temp_home();
    let source = home.root().join("source.sqlite3");
    let conn = Connection::open(&source).unwrap();
    let blob: Vec<u8> = (0..40_000_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    conn.execute_batch("CREATE TABLE big(id INTEGER PRIMARY KEY, data BLOB)")
        .unwrap();
    conn.execute("INSERT INTO big VALUES (1, ?1)", [&blob])
        .unwrap();
    drop(conn);
    let file = backup_of(&source, &home.backups_dir(), &manual());
    restore_file(&home, &file.path).unwrap();
    let conn = Connection::open(home.db_path()).unwrap();
    let back: Vec<u8> = conn
        .query_row("SELECT data FROM big", [], |r| r.get(0))
        .unwrap();
    assert!(back == blob, "the 40 MB blob comes back byte for byte");
}

#[test]
fn a_dump_is_one_snapshot_while_another_connection_writes() {
    let (_dir, home) = temp_home();
    let db = home.db_path();
    {
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             CREATE TABLE a(n INTEGER PRIMARY KEY, pad TEXT);
             CREATE TABLE b(n INTEGER PRIMARY KEY, pad TEXT);",
        )
        .unwrap();
        let tx = conn.unchecked_transaction().unwrap();
        for n in 0..20_000 {
            tx.execute("INSERT INTO a VALUES (?1, hex(randomblob(50)))", [n])
                .unwrap();
            tx.execute("INSERT INTO b VALUES (?1, hex(randomblob(50)))", [n])
                .unwrap();
        }
        tx.commit().unwrap();
    }
    // The writer keeps a and b the same size, one transaction at a time.
    let stop = Arc::new(AtomicBool::new(false));
    let commits = Arc::new(AtomicU64::new(0));
    let writer = {
        let (stop, commits, db) = (stop.clone(), commits.clone(), db.clone());
        std::thread::spawn(move || {
            let conn = Connection::open(&db).unwrap();
            conn.busy_timeout(std::time::Duration::from_secs(10))
                .unwrap();
            // No checkpoint moves the WAL on under the dump's snapshot: the
            // second connection always opens it.
            conn.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
            let mut n = 1_000_000i64;
            while !stop.load(Ordering::Relaxed) {
                conn.execute_batch(&format!(
                    "BEGIN; INSERT INTO a VALUES ({n}, 'w'); INSERT INTO b VALUES ({n}, 'w'); COMMIT;"
                ))
                .unwrap();
                n += 1;
                commits.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    while commits.load(Ordering::Relaxed) < 10 {
        std::thread::yield_now();
    }
    let before = commits.load(Ordering::Relaxed);
    let file = backup::back_up_file(&db, &home.backups_dir(), &manual(), &mut NoProgress).unwrap();
    let during = commits.load(Ordering::Relaxed) - before;
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert!(during > 0, "the writer kept committing during the dump");
    assert_eq!(file.connections, 2, "both connections read one snapshot");

    let (_dir2, other) = temp_home();
    restore_file(&other, &file.path).unwrap();
    let conn = Connection::open(other.db_path()).unwrap();
    let (a, b): (i64, i64) = conn
        .query_row(
            "SELECT (SELECT count(*) FROM a), (SELECT count(*) FROM b)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(a, b, "the dump saw both tables at the same instant");
    assert!(a >= 20_000);
}

#[test]
fn a_dump_in_rollback_journal_mode_is_one_snapshot_while_a_writer_waits() {
    // The dump's shared lock keeps any writer from committing until it
    // ends; the second connection joins only while no writer waits for the
    // lock, and the dump is consistent either way.
    let (_dir, home) = temp_home();
    let db = home.db_path();
    {
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch(
            "CREATE TABLE a(n INTEGER PRIMARY KEY, pad TEXT);
             CREATE TABLE b(n INTEGER PRIMARY KEY, pad TEXT);
             WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i < 19999)
             INSERT INTO a SELECT i, hex(randomblob(50)) FROM c;
             INSERT INTO b SELECT * FROM a;",
        )
        .unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let commits = Arc::new(AtomicU64::new(0));
    let writer = {
        let (stop, commits, db) = (stop.clone(), commits.clone(), db.clone());
        std::thread::spawn(move || {
            let conn = Connection::open(&db).unwrap();
            conn.busy_timeout(std::time::Duration::from_secs(30))
                .unwrap();
            let mut n = 1_000_000i64;
            while !stop.load(Ordering::Relaxed) {
                conn.execute_batch(&format!(
                    "BEGIN IMMEDIATE; INSERT INTO a VALUES ({n}, 'w'); INSERT INTO b VALUES ({n}, 'w'); COMMIT;"
                ))
                .unwrap();
                n += 1;
                commits.fetch_add(1, Ordering::Relaxed);
                // An application's writes leave readers room between them
                // (in rollback mode, a writer that never paused would keep
                // every reader out).
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        })
    };
    while commits.load(Ordering::Relaxed) < 10 {
        std::thread::yield_now();
    }
    let mut files = Vec::new();
    for _ in 0..3 {
        files.push(
            backup::back_up_file(&db, &home.backups_dir(), &manual(), &mut NoProgress).unwrap(),
        );
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();

    for file in files {
        let (_dir2, other) = temp_home();
        restore_file(&other, &file.path).unwrap();
        let conn = Connection::open(other.db_path()).unwrap();
        let (a, b): (i64, i64) = conn
            .query_row(
                "SELECT (SELECT count(*) FROM a), (SELECT count(*) FROM b)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(a, b, "the dump saw both tables at the same instant");
        assert!(a >= 20_010);
    }
}

#[test]
fn a_wal_database_written_by_no_one_since_it_was_opened_is_dumped_by_one_connection() {
    // SQLite has no snapshot of a WAL file nothing was written to: the
    // second connection cannot prove it reads the same, and stays out.
    let (_dir, home) = temp_home();
    let db = home.db_path();
    {
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; CREATE TABLE a(x); CREATE TABLE b(y);
             INSERT INTO a VALUES (1); INSERT INTO b VALUES (2);",
        )
        .unwrap();
    }
    assert!(
        !home.root().join("db.sqlite3-wal").exists(),
        "closing removed the WAL"
    );
    let file = backup::back_up_file(&db, &home.backups_dir(), &manual(), &mut NoProgress).unwrap();
    assert_eq!(file.connections, 1);
    let (_dir2, other) = temp_home();
    restore_file(&other, &file.path).unwrap();
    assert_same_database(&db, &other.db_path());
}

/// The `INSERT` statements of a dump's text, whole.
fn insert_statements(text: &str) -> Vec<&str> {
    text.split_inclusive(";\n")
        .filter(|s| s.starts_with("INSERT INTO"))
        .collect()
}

#[test]
fn rowids_are_kept_in_multi_row_statements_of_bounded_size() {
    // Text keys (every row keeps its rowid), a name that needs quoting,
    // rowids that follow one another (left out), gaps, negative rowids and
    // the largest one (written out); restored by us and by sqlite3.
    let (_dir, home) = temp_home();
    let source = home.root().join("source.sqlite3");
    let conn = Connection::open(&source).unwrap();
    conn.execute_batch(
        r#"CREATE TABLE "group ""x""; --"(id TEXT PRIMARY KEY, note TEXT, n INTEGER);
           WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 600)
           INSERT INTO "group ""x""; --" SELECT printf('%032x', i * 2654435761), printf('%.400c', 'n'), i FROM c;
           DELETE FROM "group ""x""; --" WHERE n = 300;
           INSERT INTO "group ""x""; --"(rowid, id, note, n) VALUES (1000, 'late', 'x', 1), (1001, 'later', NULL, 2);
           CREATE TABLE sparse(id TEXT PRIMARY KEY, v);
           INSERT INTO sparse(rowid, id, v) VALUES (-5, 'a', 1), (-4, 'b', 2.5), (7, 'c', X'00'), (8, 'd', NULL),
             (9, 'e', 'e'), (9223372036854775806, 'f', 0.1), (9223372036854775807, 'g', -0.0);"#,
    )
    .unwrap();
    drop(conn);
    let file = backup_of(&source, &home.backups_dir(), &manual());
    let text = std::fs::read_to_string(&file.path).unwrap();
    let statements = insert_statements(&text);
    let longest = statements.iter().map(|s| s.len()).max().unwrap();
    assert!(
        longest < 64 * 1024 + 1024,
        "a statement ends once it holds 64 KiB: {longest} bytes"
    );
    let group: Vec<&&str> = statements
        .iter()
        .filter(|s| s.starts_with(r#"INSERT INTO "group ""x""; --""#))
        .collect();
    assert!(
        group.len() >= 4,
        "600 rows of 450 bytes in several statements"
    );
    assert!(
        group[0].starts_with(r#"INSERT INTO "group ""x""; --" VALUES('"#),
        "rowids 1, 2, 3... are left out: {}",
        &group[0][..80]
    );
    assert!(
        group[0].matches("),\n(").count() > 50,
        "many rows a statement"
    );
    assert!(
        group
            .iter()
            .any(|s| s.contains(r#"(rowid,"id","note","n") VALUES(301,"#)),
        "the row after the gap names its rowid"
    );
    assert!(text.contains("(9223372036854775807,'g',-0.0)"));

    restore_file(&home, &file.path).unwrap();
    assert_same_database(&source, &home.db_path());
    let restored = home.root().join("by-sqlite3.sqlite3");
    assert_sqlite3_restores(&file.path, &restored, &source);
}

#[test]
fn dumps_in_the_previous_form_one_row_an_insert_still_restore() {
    // What uplift wrote before multi-row statements, as backups on sites
    // hold it: every row its own INSERT, the rowid and the columns named,
    // floats as powers of two.
    let (_dir, home) = temp_home();
    let file = home.root().join("old.dump");
    planted_dump(
        &file,
        "PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\n\
         CREATE TABLE t(id TEXT PRIMARY KEY, r REAL, b BLOB, s TEXT);\n\
         INSERT INTO \"t\"(rowid,\"id\",\"r\",\"b\",\"s\") VALUES(1,'a',3602879701896397.0/36028797018963968,X'00ff',NULL);\n\
         INSERT INTO \"t\"(rowid,\"id\",\"r\",\"b\",\"s\") VALUES(5,'b',-1.0/2,X'','x'||char(10)||'y');\n\
         INSERT INTO \"t\"(rowid,\"id\",\"r\",\"b\",\"s\") VALUES(6,'c',9.0e+999,NULL,CAST(X'ff' AS TEXT));\n\
         CREATE TABLE k(a INTEGER PRIMARY KEY, b);\n\
         INSERT INTO \"k\" VALUES(1,'one');\n\
         INSERT INTO \"k\" VALUES(7,3.0);\n\
         CREATE INDEX t_s ON t(s);\n\
         PRAGMA user_version=3;\nPRAGMA application_id=0;\nCOMMIT;\n",
    );
    let report = restore_file(&home, &file).unwrap();
    assert!(report.verified);
    assert_eq!(report.rows, 5);
    let conn = Connection::open(home.db_path()).unwrap();
    let rows: Vec<String> = conn
        .prepare("SELECT rowid, * FROM t ORDER BY rowid")
        .unwrap()
        .query_map([], |r| {
            Ok((0..5)
                .map(|i| describe(r.get_ref(i).unwrap()))
                .collect::<Vec<_>>()
                .join(" "))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        rows,
        [
            format!(
                "int:1 text:61 real:{:016x} blob:00ff null",
                0.1f64.to_bits()
            ),
            format!(
                "int:5 text:62 real:{:016x} blob: text:780a79",
                (-0.5f64).to_bits()
            ),
            format!(
                "int:6 text:63 real:{:016x} null text:ff",
                f64::INFINITY.to_bits()
            ),
        ]
    );
    let k: Vec<(i64, String)> = conn
        .prepare("SELECT a, typeof(b) FROM k ORDER BY a")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(k, [(1, "text".to_string()), (7, "real".to_string())]);
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 3);
}

// ---------------------------------------------------------------------------
// Bad dumps: refused before anything is touched

/// Asserts the restore failed and the home is exactly as before: same
/// database bytes, no new backup.
fn assert_untouched(home: &Home, db_bytes: &[u8], backups_before: &[String]) {
    assert_eq!(
        std::fs::read(home.db_path()).unwrap(),
        db_bytes,
        "the database is unchanged"
    );
    assert_eq!(
        &file_names(&home.backups_dir()),
        backups_before,
        "no backup was added or removed"
    );
    let stray: Vec<String> = file_names(home.root())
        .into_iter()
        .filter(|n| n.contains("restoring") || n.ends_with("-journal") || n.ends_with("-wal"))
        .collect();
    assert!(stray.is_empty(), "no temporary files left: {stray:?}");
}

fn good_dump(home: &Home) -> PathBuf {
    let source = home.root().join("source.sqlite3");
    rich_database(&source, false);
    backup_of(&source, &home.root().join("dumps"), &manual()).path
}

#[test]
fn restore_refuses_a_truncated_dump() {
    let (_dir, home, bytes) = home_with_database();
    let dump = good_dump(&home);
    let text = std::fs::read(&dump).unwrap();
    for cut in [text.len() / 2, text.len() - 3, 40] {
        std::fs::write(&dump, &text[..cut]).unwrap();
        let err = restore_file(&home, &dump).unwrap_err();
        assert!(
            matches!(err, RestoreError::Verify(BackupFileError::Truncated { .. })),
            "{err}"
        );
        assert!(
            err.to_string().contains(&dump.display().to_string()),
            "names the file: {err}"
        );
        assert_untouched(&home, &bytes, &[]);
    }
}

#[test]
fn restore_refuses_a_dump_with_one_byte_changed() {
    let (_dir, home, bytes) = home_with_database();
    let dump = good_dump(&home);
    let mut text = std::fs::read(&dump).unwrap();
    for at in [text.len() / 3, 10, text.len() - 10] {
        text[at] ^= 0x01;
        std::fs::write(&dump, &text).unwrap();
        let err = restore_file(&home, &dump).unwrap_err();
        assert!(
            matches!(err, RestoreError::Verify(BackupFileError::Corrupt { .. })),
            "{err}"
        );
        assert_untouched(&home, &bytes, &[]);
        text[at] ^= 0x01;
    }
}

#[test]
fn a_dump_that_does_not_verify_is_refused_in_a_home_without_a_database_too() {
    // With no database to replace, the dump is built while it is verified:
    // one that does not verify is still refused as such, and leaves nothing.
    let (_dir, home) = temp_home();
    let dump = good_dump(&home);
    let text = std::fs::read(&dump).unwrap();
    let mut corrupt = text.clone();
    let at = corrupt.len() / 2;
    corrupt[at] ^= 0x01;
    for (bytes, truncated) in [(&text[..text.len() - 3], true), (&corrupt[..], false)] {
        std::fs::write(&dump, bytes).unwrap();
        let err = restore_file(&home, &dump).unwrap_err();
        if truncated {
            assert!(
                matches!(err, RestoreError::Verify(BackupFileError::Truncated { .. })),
                "{err}"
            );
        } else {
            assert!(
                matches!(err, RestoreError::Verify(BackupFileError::Corrupt { .. })),
                "{err}"
            );
        }
        assert!(!home.db_path().exists(), "no database was created");
        let stray: Vec<String> = file_names(home.root())
            .into_iter()
            .filter(|n| n.contains("restoring"))
            .collect();
        assert!(stray.is_empty(), "no temporary files left: {stray:?}");
    }
    // And the intact dump restores.
    std::fs::write(&dump, &text).unwrap();
    let report = restore_file(&home, &dump).unwrap();
    assert!(report.verified);
}

#[test]
fn restore_refuses_empty_and_foreign_files() {
    let (_dir, home, bytes) = home_with_database();
    let file = home.root().join("x.dump");
    let cases: [(&[u8], &str); 5] = [
        (b"", "empty"),
        (b"  \n\n", "empty"),
        (b"hello, this is a letter\n", "not an SQL dump"),
        (b"\x7fELF\x02\x01\x01\0\0\0\0\0", "not an SQL dump"),
        (b"SQLite format 3\0\x10\0\x01\x01", "SQLite database file"),
    ];
    for (content, expected) in cases {
        std::fs::write(&file, content).unwrap();
        let err = restore_file(&home, &file).unwrap_err();
        assert!(err.to_string().contains(expected), "{expected}: {err}");
        assert_untouched(&home, &bytes, &[]);
    }
    // Plain SQL that stops before COMMIT: taken as truncated.
    std::fs::write(
        &file,
        "BEGIN TRANSACTION;\nCREATE TABLE t(x);\nINSERT INTO t VALUES(1);\n",
    )
    .unwrap();
    let err = restore_file(&home, &file).unwrap_err();
    assert!(
        matches!(err, RestoreError::Verify(BackupFileError::Truncated { .. })),
        "{err}"
    );
    assert_untouched(&home, &bytes, &[]);
}

#[test]
fn restore_refuses_hostile_statements_even_with_a_valid_checksum() {
    let (dir, home, bytes) = home_with_database();
    let outside = dir.path().join("outside.db");
    let o = outside.display();
    let hostile = [
        (format!("ATTACH DATABASE '{o}' AS x;"), "ATTACH"),
        (format!("VACUUM INTO '{o}';"), "VACUUM"),
        ("PRAGMA journal_mode=DELETE;".to_string(), "journal_mode"),
        ("PRAGMA main.synchronous=0;".to_string(), "synchronous"),
        (
            "SELECT load_extension('/tmp/evil.so');".to_string(),
            "SELECT",
        ),
        (
            "INSERT INTO t VALUES(load_extension('/tmp/evil.so'));".to_string(),
            "load_extension",
        ),
        (
            "CREATE TABLE u AS SELECT load_extension('/tmp/evil.so');".to_string(),
            "load_extension",
        ),
        ("CREATE TEMP TABLE u(x);".to_string(), "temp"),
        ("DROP TABLE t;".to_string(), "DROP"),
        ("UPDATE t SET x = 2;".to_string(), "UPDATE"),
        ("DELETE FROM t;".to_string(), "deletes"),
        (
            "INSERT INTO sqlite_schema VALUES('table','u','u',2,'CREATE TABLE u(x)');".to_string(),
            "sqlite_schema",
        ),
        (
            "PRAGMA writable_schema=ON; UPDATE sqlite_schema SET sql = 'x';".to_string(),
            "UPDATE",
        ),
        (
            "INSERT INTO t SELECT file FROM pragma_database_list;".to_string(),
            "database_list",
        ),
        (
            "INSERT INTO t VALUES(1),\n(load_extension('/tmp/evil.so'));".to_string(),
            "load_extension",
        ),
        (
            "INSERT INTO sqlite_schema(type,name,tbl_name,rootpage,sql) VALUES\
             ('table','v','v',0,'CREATE VIRTUAL TABLE v USING fts5(x)'),\
             ('table','u','u',2,'CREATE TABLE u(x)');"
                .to_string(),
            "sqlite_schema",
        ),
        (
            format!("INSERT INTO t VALUES(1),(2);ATTACH DATABASE '{o}' AS x;"),
            "ATTACH",
        ),
    ];
    for (i, (statement, expected)) in hostile.iter().enumerate() {
        let file = home.root().join(format!("planted-{i}.dump"));
        planted_dump(
            &file,
            &format!(
                "PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\nCREATE TABLE t(x);\n{statement}\nCOMMIT;\n"
            ),
        );
        let before = file_names(&home.backups_dir());
        let err = restore_file(&home, &file).unwrap_err();
        assert!(
            matches!(err, RestoreError::Refused { line: 9, .. }),
            "{statement}: {err}"
        );
        assert!(err.to_string().contains(expected), "{statement}: {err}");
        assert!(
            !outside.exists(),
            "{statement} reached a file outside the database"
        );
        // The safety backup of the current database was made; nothing else.
        let after = file_names(&home.backups_dir());
        assert_eq!(after.len(), before.len() + 1);
        assert_untouched(&home, &bytes, &after);
    }
}

#[test]
fn restore_refuses_a_statement_larger_than_the_limit() {
    let (_dir, home, bytes) = home_with_database();
    let file = home.root().join("large.dump");
    let huge = "x".repeat(200_000);
    planted_dump(
        &file,
        &format!(
            "BEGIN TRANSACTION;\nCREATE TABLE t(x);\nINSERT INTO t VALUES('{huge}');\nCOMMIT;\n"
        ),
    );
    let options = RestoreOptions {
        max_statement_bytes: 100_000,
        ..RestoreOptions::default()
    };
    let err = backup::restore(&home, &file, &options, &mut NoProgress).unwrap_err();
    assert!(
        err.to_string().contains("longer than 100000 bytes"),
        "{err}"
    );
    assert!(err.to_string().contains("line 8"), "{err}");
    let after = file_names(&home.backups_dir());
    assert_untouched(&home, &bytes, &after);
}

/// Found while writing the `dump_read` fuzz target (its seed
/// `deep_unistr`): the restore's value parser followed
/// `unistr(unistr(...))` by recursion, so a planted dump with a
/// deep enough nesting overflowed the stack of the thread that reads the
/// dump, and aborted uplift. Such a value is now left to SQLite, which
/// refuses it.
#[test]
fn restore_refuses_deeply_nested_text_functions_without_crashing() {
    let (_dir, home, bytes) = home_with_database();
    let before = file_names(&home.backups_dir());
    let file = home.root().join("nested.dump");
    let depth = 100_000;
    planted_dump(
        &file,
        &format!(
            "BEGIN TRANSACTION;\nCREATE TABLE t(x);\nINSERT INTO t VALUES({}'x'{});\nCOMMIT;\n",
            "unistr(".repeat(depth),
            ")".repeat(depth)
        ),
    );
    let options = RestoreOptions {
        safety_backup: false,
        ..RestoreOptions::default()
    };
    let err = backup::restore(&home, &file, &options, &mut NoProgress).unwrap_err();
    assert!(
        matches!(err, RestoreError::Statement { line: 8, .. }),
        "{err}"
    );
    assert_untouched(&home, &bytes, &before);
}

/// Found while writing the `dump_read` fuzz target (its seed
/// `growing_replace`): each `replace()` that doubles its text doubled what
/// the parser built, so forty nested ones in a 1 kB
/// statement asked for terabytes. The parser now reads only replacements
/// that do not grow the text (as shells write them) and leaves the others
/// to SQLite, which bounds what it builds by its length limit.
#[test]
fn reading_a_dump_never_builds_more_than_the_statement_holds() {
    let depth = 40;
    let value = format!(
        "{}'ab'{}",
        "replace(".repeat(depth),
        ",'a','aa')".repeat(depth)
    );
    let growing = format!("INSERT INTO t VALUES({value});");
    let shrinking =
        "INSERT INTO t VALUES(replace(replace('a\\r\\nb','\\r',char(13)),'\\n',char(10)));";
    let dump = format!("CREATE TABLE t(x);\n{growing}\n{shrinking}\n");
    let statements = uplift::internals::read_dump(dump.as_bytes(), 1 << 16, 1 << 20).unwrap();
    assert_eq!(statements.len(), 3);
    assert_eq!(statements[1].text, growing.as_bytes());
    assert_eq!(statements[1].insert, None, "left to SQLite");
    let Some((_, _, values)) = &statements[2].insert else {
        panic!("a shell's replace() is read by the parser itself");
    };
    assert_eq!(
        values,
        &[uplift::internals::DumpValue::Text(b"a\r\nb".to_vec())]
    );
}

/// Found by the `dump_read` fuzz target: a raw NUL byte inside a quoted
/// string ends the statement for SQLite (and the line for sqlite3's
/// shell), which therefore refuse it, but the restore's own parser read
/// past it and restored the text. The restore now refuses it too.
#[test]
fn restore_refuses_a_raw_nul_in_a_string_as_sqlite_does() {
    let (_dir, home, bytes) = home_with_database();
    let before = file_names(&home.backups_dir());
    let file = home.root().join("nul.dump");
    planted_dump(
        &file,
        "BEGIN TRANSACTION;\nCREATE TABLE t(x);\nINSERT INTO t VALUES('it''s\0hidden');\nCOMMIT;\n",
    );
    let options = RestoreOptions {
        safety_backup: false,
        ..RestoreOptions::default()
    };
    let err = backup::restore(&home, &file, &options, &mut NoProgress).unwrap_err();
    assert!(
        matches!(err, RestoreError::Statement { line: 8, .. }),
        "{err}"
    );
    assert_untouched(&home, &bytes, &before);
}

/// Found while writing the `dump_restore` fuzz target: a planted dump whose
/// `CREATE TABLE ... AS` runs a query without end kept the restore running,
/// its temporary database growing until the disk was full. The restore now
/// stops a dump that does far more work than its size can need.
#[test]
fn restore_stops_a_dump_whose_query_never_ends() {
    let (_dir, home, bytes) = home_with_database();
    let before = file_names(&home.backups_dir());
    let file = home.root().join("endless.dump");
    planted_dump(
        &file,
        "BEGIN TRANSACTION;\nCREATE TABLE t AS WITH RECURSIVE c(x) AS \
         (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c;\nCOMMIT;\n",
    );
    let options = RestoreOptions {
        safety_backup: false,
        ..RestoreOptions::default()
    };
    let err = backup::restore(&home, &file, &options, &mut NoProgress).unwrap_err();
    match &err {
        RestoreError::Refused { line, reason, .. } => {
            assert_eq!(*line, 7);
            assert!(
                reason.contains("more work than a dump of its size"),
                "{err}"
            );
        }
        other => panic!("{other}"),
    }
    assert_untouched(&home, &bytes, &before);
}

/// Found by the `dump_restore` fuzz target, against the sqlite3 shell: a
/// dump whose last lines, its `COMMIT` among them, sit inside a `/*`
/// comment that is never closed. SQLite never sees that `COMMIT` (the shell
/// rolls the transaction back and restores nothing), but the restore read
/// the comment to the end of the file and committed what came before. It
/// now refuses the dump, as unfinished.
#[test]
fn restore_refuses_a_dump_whose_commit_is_inside_an_unclosed_comment() {
    let (_dir, home, bytes) = home_with_database();
    let before = file_names(&home.backups_dir());
    let file = home.root().join("open-comment.dump");
    std::fs::write(
        &file,
        "BEGIN TRANSACTION;\nCREATE TABLE t(x);\nINSERT INTO t VALUES(1);\n/* no end\nCOMMIT;\n",
    )
    .unwrap();
    let options = RestoreOptions {
        safety_backup: false,
        ..RestoreOptions::default()
    };
    let err = backup::restore(&home, &file, &options, &mut NoProgress).unwrap_err();
    assert!(
        matches!(
            err,
            RestoreError::Split {
                cause: backup::SplitError::UnclosedComment { line: 4 },
                ..
            }
        ),
        "{err}"
    );
    assert_untouched(&home, &bytes, &before);
}

#[test]
fn restore_refuses_a_dump_that_breaks_its_foreign_keys() {
    let (_dir, home, bytes) = home_with_database();
    let file = home.root().join("fk.dump");
    planted_dump(
        &file,
        "BEGIN TRANSACTION;\nCREATE TABLE p(id INTEGER PRIMARY KEY);\n\
         CREATE TABLE c(p INTEGER REFERENCES p(id));\nINSERT INTO c VALUES(7);\nCOMMIT;\n",
    );
    let err = restore_file(&home, &file).unwrap_err();
    assert!(
        matches!(
            err,
            RestoreError::Check {
                check: "foreign key check",
                ..
            }
        ),
        "{err}"
    );
    let after = file_names(&home.backups_dir());
    assert_untouched(&home, &bytes, &after);
}

// ---------------------------------------------------------------------------
// Backups as files

fn named_backup(db: &Path, dir: &Path, kind: BackupKind, version: &str) -> PathBuf {
    let mut options = BackupOptions::new(kind);
    options.data_version = Some(version.to_string());
    backup_of(db, dir, &options).path
}

#[test]
fn two_backups_in_the_same_second_get_distinct_names() {
    let (_dir, home, _) = home_with_database();
    let dir = home.backups_dir();
    // Keep making pairs until two land in the same second (almost always
    // the first pair).
    loop {
        let a = backup_of(&home.db_path(), &dir, &manual());
        let b = backup_of(&home.db_path(), &dir, &manual());
        assert_ne!(a.path, b.path);
        assert!(a.path.exists() && b.path.exists());
        let stem = |p: &Path| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .replace(".dump", "")
        };
        if a.header.created.as_second() == b.header.created.as_second() {
            assert!(stem(&b.path).ends_with("-2"), "{}", b.path.display());
            assert!(stem(&b.path).starts_with("db-v1.0_"));
            break;
        }
    }
    let entries = backup::list(&dir).unwrap();
    assert!(entries.windows(2).all(|w| w[0].created() <= w[1].created()));
}

#[test]
fn retention_removes_old_automatic_backups_and_keeps_manual_ones() {
    let (_dir, home, _) = home_with_database();
    let dir = home.backups_dir();
    let db = home.db_path();
    let manual1 = named_backup(&db, &dir, BackupKind::Manual, "0.9");
    let mut automatic = Vec::new();
    // Retries and repeated upgrades leave several backups of one version.
    for v in ["1.0", "1.0", "1.0", "1.1", "1.1"] {
        automatic.push(named_backup(&db, &dir, BackupKind::Automatic, v));
    }
    let manual2 = named_backup(&db, &dir, BackupKind::Manual, "1.1");
    let foreign = dir.join("db-v0.1_2000-01-01_00-00-00.dump");
    std::fs::write(&foreign, "BEGIN TRANSACTION;\nCOMMIT;\n").unwrap();
    // An automatic backup whose name sorts last but whose time is oldest.
    let renamed = dir.join("db-v9.9_2099-12-31_23-59-59.dump");
    std::fs::rename(&automatic[0], &renamed).unwrap();

    let removed = backup::prune_automatic(&dir, 3, &[]).unwrap();
    assert_eq!(
        removed,
        vec![renamed.clone(), automatic[1].clone()],
        "the two oldest by recorded order"
    );
    for kept in [
        &automatic[2],
        &automatic[3],
        &automatic[4],
        &manual1,
        &manual2,
        &foreign,
    ] {
        assert!(kept.exists(), "{} was kept", kept.display());
    }

    // The command prunes every kind to N, by recorded order, but keeps the
    // newest backup of each data version (1.0's is automatic[2], 0.9's
    // manual1); foreign files stay.
    let output = run_cmd(
        uplift()
            .arg("--home")
            .arg(home.root())
            .args(["backups", "prune", "--keep", "1"]),
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let left = file_names(&dir);
    let expected_left: Vec<String> = {
        let mut v = vec![
            automatic[2]
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned(),
            automatic[4]
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned(),
            manual1.file_name().unwrap().to_string_lossy().into_owned(),
            manual2.file_name().unwrap().to_string_lossy().into_owned(),
            foreign.file_name().unwrap().to_string_lossy().into_owned(),
        ];
        v.sort();
        v
    };
    assert_eq!(left, expected_left);
}

#[test]
fn latest_picks_the_newest_backup_the_release_can_run_by_recorded_time() {
    let (dir, home, _) = home_with_database();
    let backups = home.backups_dir();
    let db = home.db_path();
    let v10 = named_backup(&db, &backups, BackupKind::Automatic, "1.0");
    named_backup(&db, &backups, BackupKind::Automatic, "2.0");
    let v15 = named_backup(&db, &backups, BackupKind::Manual, "1.5");
    let v12_corrupt = named_backup(&db, &backups, BackupKind::Automatic, "1.2");
    // Names that sort opposite to the recorded times.
    let v10_renamed = backups.join("db-v1.0_2099-01-01_00-00-00.dump");
    std::fs::rename(&v10, &v10_renamed).unwrap();
    let mut bytes = std::fs::read(&v12_corrupt).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x20;
    std::fs::write(&v12_corrupt, bytes).unwrap();

    let release = |v: &str| uplift::version::Version::parse(v).unwrap();
    let pick = |v: &str| {
        backup::latest_restorable(&backups, Some(&release(v)), backup::Candidates::Backups)
            .unwrap()
            .map(|e| e.path)
    };
    assert_eq!(
        pick("1.6"),
        Some(v15.clone()),
        "1.5 is newer than 1.0 by time, 2.0 is too new, 1.2 is corrupt"
    );
    assert_eq!(
        pick("1.3"),
        Some(v10_renamed.clone()),
        "the corrupt 1.2 is skipped"
    );
    assert_eq!(pick("2.0"), Some(v15.clone()));
    assert_eq!(pick("0.9"), None);
    assert_eq!(
        backup::latest_restorable(&backups, None, backup::Candidates::Backups)
            .unwrap()
            .map(|e| e.path),
        Some(v15.clone())
    );

    // The command line, with the release read from release.toml.
    let release_dir = dir.path().join("release");
    std::fs::create_dir_all(&release_dir).unwrap();
    std::fs::write(
        release_dir.join("release.toml"),
        "app = \"demo\"\nversion = \"1.3\"\n",
    )
    .unwrap();
    let output = run_cmd(
        uplift()
            .arg("--home")
            .arg(home.root())
            .arg("--release")
            .arg(&release_dir)
            .args(["dbrestore", "--latest"]),
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains(&v10_renamed.display().to_string()),
        "{}",
        stderr(&output)
    );

    std::fs::write(
        release_dir.join("release.toml"),
        "app = \"demo\"\nversion = \"0.5\"\n",
    )
    .unwrap();
    let output = run_cmd(
        uplift()
            .arg("--home")
            .arg(home.root())
            .arg("--release")
            .arg(&release_dir)
            .args(["dbrestore", "--latest"]),
    );
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(err.contains("no backup") && err.contains("<= 0.5"), "{err}");
    assert!(
        err.contains("db-v2.0_") && err.contains("corrupt"),
        "lists what exists: {err}"
    );
}

// ---------------------------------------------------------------------------
// The command line

#[test]
fn dbbackup_then_dbrestore_into_a_home_without_a_database() {
    let (_dir, home, _) = home_with_database();
    let output = run_cmd(
        uplift()
            .arg("--home")
            .arg(home.root())
            .args(["dbbackup", "--compress"]),
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let path = PathBuf::from(stdout(&output).trim());
    assert!(path.starts_with(home.backups_dir()));
    assert!(
        path.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("db-v1.0_")
    );
    assert!(path.to_string_lossy().ends_with(".dump.zst"));
    assert!(
        !stderr(&output).contains('\u{1b}'),
        "no progress bar when not on a terminal"
    );

    let (_dir2, fresh) = temp_home();
    let output = run_cmd(
        uplift()
            .arg("--home")
            .arg(fresh.root())
            .arg("dbrestore")
            .arg(&path),
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("data version 1.0"),
        "{}",
        stderr(&output)
    );
    assert!(
        file_names(&fresh.backups_dir()).is_empty(),
        "nothing to back up first"
    );
    assert_same_database(&home.db_path(), &fresh.db_path());

    // Restoring over it backs the current database up first and says where.
    let output = run_cmd(
        uplift()
            .arg("--home")
            .arg(fresh.root())
            .arg("--quiet")
            .arg("dbrestore")
            .arg(&path),
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(file_names(&fresh.backups_dir()).len(), 1);
}

#[test]
fn a_full_disk_leaves_no_dump_and_the_database_untouched() {
    let (_dir, home) = temp_home();
    rich_database(&home.db_path(), false);
    let before = std::fs::read(home.db_path()).unwrap();
    // 1000 blocks: far less than the 6 MB dump.
    let script = format!(
        "ulimit -f 1000 && exec '{}' --home '{}' dbbackup",
        env!("CARGO_BIN_EXE_uplift"),
        home.root().display()
    );
    let output = run_cmd(std::process::Command::new("sh").arg("-c").arg(script));
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(
        err.contains("could not write") && err.contains("too large"),
        "{err}"
    );
    assert!(
        file_names(&home.backups_dir()).is_empty(),
        "no dump and no temporary file left"
    );
    assert_eq!(std::fs::read(home.db_path()).unwrap(), before);
}

#[test]
fn dbrestore_select_refuses_without_a_terminal() {
    let (_dir, home, bytes) = home_with_database();
    let output = run_cmd(
        uplift()
            .arg("--home")
            .arg(home.root())
            .args(["dbrestore", "--select"]),
    );
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("needs a terminal"),
        "{}",
        stderr(&output)
    );
    assert_eq!(std::fs::read(home.db_path()).unwrap(), bytes);
}

#[test]
fn dbbackup_and_dbrestore_refuse_while_another_uplift_holds_the_home() {
    let (_dir, home, bytes) = home_with_database();
    let dump = backup_of(&home.db_path(), &home.root().join("dumps"), &manual()).path;
    let _lock = home.lock(false).unwrap();
    for args in [
        vec!["dbbackup".to_string()],
        vec!["dbrestore".into(), dump.display().to_string()],
    ] {
        let output = run_cmd(uplift().arg("--home").arg(home.root()).args(&args));
        assert!(!output.status.success(), "{args:?}");
        assert!(
            stderr(&output).contains("holds this home"),
            "{}",
            stderr(&output)
        );
    }
    assert_eq!(std::fs::read(home.db_path()).unwrap(), bytes);
    assert!(file_names(&home.backups_dir()).is_empty());
}

#[test]
fn backups_list_shows_versions_times_sizes_and_verification() {
    let (_dir, home, _) = home_with_database();
    let dir = home.backups_dir();
    let good = named_backup(&home.db_path(), &dir, BackupKind::Automatic, "1.0");
    let bad = named_backup(&home.db_path(), &dir, BackupKind::Manual, "1.1");
    let len = std::fs::metadata(&bad).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&bad)
        .unwrap()
        .set_len(len - 20)
        .unwrap();

    let output = run_cmd(
        uplift()
            .arg("--home")
            .arg(home.root())
            .args(["backups", "list", "--json"]),
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let listed: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(
        listed[0]["file"],
        good.file_name().unwrap().to_string_lossy().as_ref()
    );
    assert_eq!(listed[0]["status"], "verified");
    assert_eq!(listed[0]["kind"], "automatic");
    assert_eq!(listed[0]["data_version"], "1.0");
    assert!(listed[0]["size"].as_u64().unwrap() > 0);
    assert!(listed[0]["created"].as_str().unwrap().ends_with('Z'));
    assert_eq!(listed[1]["status"], "corrupt");
    assert!(listed[1]["problem"].as_str().unwrap().contains("truncated"));

    let output = run_cmd(
        uplift()
            .arg("--home")
            .arg(home.root())
            .args(["backups", "list"]),
    );
    let text = stdout(&output);
    assert!(
        text.contains("verified") && text.contains("corrupt") && text.contains("1.1"),
        "{text}"
    );
}
