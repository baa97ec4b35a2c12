//! Verifying that each index holds exactly its table's rows, by
//! fingerprints that can be computed in pieces on several cores.
//!
//! `PRAGMA integrity_check(T)` verifies an index by looking every row of
//! `T` up in it: one seek per row and index, in one thread, jumping around
//! the file. Here the same fact is established by reading each b-tree once,
//! in order:
//!
//! - the rows of `T` (in rowid ranges, any number at a time) give, for each
//!   index, the entries it must hold: the indexed columns and the rowid;
//! - each index, read on its own (a covering scan that never touches the
//!   table), gives the entries it does hold.
//!
//! Each side adds up a keyed hash of every entry (and counts them); the sums
//! are equal when the two multisets of entries are, and differ otherwise
//! except with a chance of 2^-64 for any given difference (the key is drawn
//! at random for each check, so a crafted dump cannot aim at it). This is
//! the approach of PostgreSQL's `amcheck` (`heapallindexed`), with sums in
//! place of its Bloom filter.
//!
//! Values are hashed as SQLite's `BINARY` comparison sees them: an integer
//! and a real of the same value are one value (3 and 3.0, 0 and -0.0), text
//! and blobs by their bytes. So "equal" here is what an index lookup would
//! call a match, as in `integrity_check`. The rowid read from an index entry
//! is its record's last field: an entry with extra fields does not match,
//! as `integrity_check`'s "rowid not at end-of-record" would say. A `UNIQUE`
//! index read in order must not hold two neighbouring entries with equal,
//! non-NULL keys ("non-unique entry in index", as `integrity_check` says).
//!
//! Only the indexes this covers exactly are verified this way: see
//! [`plan`]. A table with any other index keeps `integrity_check(T)`.

use std::hash::{BuildHasher, Hasher, RandomState};

use rusqlite::Connection;
use rusqlite::types::ValueRef;

use crate::engine::sqlite::sql::quote_ident;

/// A rowid table whose every index is verified by fingerprints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Indexed {
    /// The table's name.
    pub table: String,
    /// How the table's rowid is named in SQL (a name no column shadows).
    rowid: &'static str,
    /// The columns the row scan reads, quoted.
    columns: Vec<String>,
    /// The table's indexes.
    pub indexes: Vec<IndexKeys>,
    /// The smallest and largest rowid (`None`: no rows).
    pub rowids: Option<(i64, i64)>,
}

/// One index of an [`Indexed`] table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IndexKeys {
    /// The index's name.
    pub name: String,
    /// Whether its keys must be unique.
    unique: bool,
    /// Its key columns, in index order, as positions in [`Indexed::columns`].
    keys: Vec<usize>,
}

/// How many entries, and the sum of their hashes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Fingerprint {
    pub entries: u64,
    sum: u64,
}

impl Fingerprint {
    fn add(&mut self, hash: u64) {
        self.entries += 1;
        self.sum = self.sum.wrapping_add(hash);
    }

    /// Both together, as if one side had read both pieces.
    pub(super) fn merge(&mut self, other: Fingerprint) {
        self.entries += other.entries;
        self.sum = self.sum.wrapping_add(other.sum);
    }
}

/// What reading one index found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Held {
    pub fingerprint: Fingerprint,
    /// SQLite's words for a `UNIQUE` index holding one key twice.
    pub duplicate: Option<String>,
}

/// The hash of an entry: the same for equal entries within one check.
pub(crate) type Keys = RandomState;

/// Splits the rowid tables of the main database into those whose indexes
/// are all verified by fingerprints, and the names of those that need
/// `integrity_check(T)` (an index or a table this module does not cover).
/// Tables without an index are in neither: `quick_check` covers them.
///
/// Covered: a rowid table without generated columns, in a UTF-8 database,
/// whose every index is a whole-table index (not partial) on plain columns
/// (not expressions, each once) with the `BINARY` collation, and can be
/// read as a covering index (SQLite's plan says so). `WITHOUT ROWID` tables
/// always need `integrity_check(T)`, which also checks their key order.
pub(crate) fn plan(conn: &Connection) -> rusqlite::Result<(Vec<Indexed>, Vec<String>)> {
    let utf8 = conn.query_row("PRAGMA encoding", [], |r| r.get::<_, String>(0))? == "UTF-8";
    let mut tables: Vec<(String, bool)> = Vec::new();
    {
        let mut stmt = conn.prepare(
            "SELECT name, wr FROM pragma_table_list
             WHERE schema = 'main' AND type IN ('table', 'shadow') ORDER BY name",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        for row in rows {
            tables.push(row?);
        }
    }
    let mut covered = Vec::new();
    let mut others = Vec::new();
    for (table, without_rowid) in tables {
        let has_index: bool = conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM pragma_index_list(?1, 'main'))",
            [&table],
            |r| r.get(0),
        )?;
        if !has_index && !without_rowid {
            continue;
        }
        match (utf8 && !without_rowid)
            .then(|| covered_table(conn, &table))
            .transpose()?
            .flatten()
        {
            Some(indexed) => covered.push(indexed),
            None => others.push(table),
        }
    }
    Ok((covered, others))
}

/// `table` as an [`Indexed`] table, or `None` if an index or column of it
/// is not covered.
fn covered_table(conn: &Connection, table: &str) -> rusqlite::Result<Option<Indexed>> {
    // (name, hidden) of every column, by cid.
    let mut columns: Vec<(String, i64)> = Vec::new();
    {
        let mut stmt = conn.prepare("SELECT name, hidden FROM pragma_table_xinfo(?1, 'main')")?;
        let rows = stmt.query_map([table], |r| Ok((r.get(0)?, r.get(1)?)))?;
        for row in rows {
            columns.push(row?);
        }
    }
    if columns.iter().any(|(_, hidden)| *hidden != 0) {
        return Ok(None);
    }
    let Some(rowid) = ["rowid", "oid", "_rowid_"]
        .into_iter()
        .find(|alias| !columns.iter().any(|(c, _)| c.eq_ignore_ascii_case(alias)))
    else {
        return Ok(None);
    };
    let mut list: Vec<(String, bool, bool)> = Vec::new();
    {
        let mut stmt =
            conn.prepare("SELECT name, \"unique\", partial FROM pragma_index_list(?1, 'main')")?;
        let rows = stmt.query_map([table], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        for row in rows {
            list.push(row?);
        }
    }
    list.sort();
    let mut read: Vec<usize> = Vec::new();
    let mut indexes = Vec::new();
    for (name, unique, partial) in list {
        if partial {
            return Ok(None);
        }
        let mut keys = Vec::new();
        let mut stmt = conn.prepare(
            "SELECT cid, coll FROM pragma_index_xinfo(?1, 'main') WHERE key ORDER BY seqno",
        )?;
        let rows = stmt.query_map([&name], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, Option<String>>(1)?))
        })?;
        for row in rows {
            let (cid, coll) = row?;
            let plain = usize::try_from(cid).ok().filter(|&c| c < columns.len());
            let (Some(cid), Some("BINARY")) = (plain, coll.as_deref()) else {
                return Ok(None);
            };
            let position = match read.iter().position(|&c| c == cid) {
                Some(p) => p,
                None => {
                    read.push(cid);
                    read.len() - 1
                }
            };
            keys.push(position);
        }
        // A column indexed twice would be read from the index once.
        let mut distinct = keys.clone();
        distinct.sort_unstable();
        distinct.dedup();
        if keys.is_empty() || distinct.len() != keys.len() {
            return Ok(None);
        }
        indexes.push(IndexKeys { name, unique, keys });
    }
    let mut indexed = Indexed {
        table: table.to_string(),
        rowid,
        columns: read.iter().map(|&c| quote_ident(&columns[c].0)).collect(),
        indexes,
        rowids: None,
    };
    for i in 0..indexed.indexes.len() {
        if !reads_only_the_index(conn, &indexed, i)? {
            return Ok(None);
        }
    }
    // One end at a time, from the table itself: both in one query would
    // scan the smallest index, which holds the rowids too.
    let end = |f: &str| -> rusqlite::Result<Option<i64>> {
        conn.query_row(
            &format!(
                "SELECT {f}({rowid}) FROM main.{} NOT INDEXED",
                quote_ident(table)
            ),
            [],
            |r| r.get(0),
        )
    };
    indexed.rowids = end("min")?.zip(end("max")?);
    Ok(Some(indexed))
}

/// The scan of index `index` of `table`.
fn index_scan(table: &Indexed, index: usize) -> String {
    let keys = &table.indexes[index];
    let columns: Vec<&str> = keys
        .keys
        .iter()
        .map(|&k| table.columns[k].as_str())
        .collect();
    format!(
        "SELECT {}, {} FROM main.{} INDEXED BY {}",
        columns.join(", "),
        table.rowid,
        quote_ident(&table.table),
        quote_ident(&keys.name)
    )
}

/// Whether SQLite reads index `index` of `table` on its own, as a covering
/// index, without the table.
fn reads_only_the_index(
    conn: &Connection,
    table: &Indexed,
    index: usize,
) -> rusqlite::Result<bool> {
    let sql = format!("EXPLAIN QUERY PLAN {}", index_scan(table, index));
    let Ok(mut stmt) = conn.prepare(&sql) else {
        return Ok(false);
    };
    let details: Vec<String> = stmt
        .query_map([], |r| r.get(3))?
        .collect::<rusqlite::Result<_>>()?;
    let wanted = format!("USING COVERING INDEX {}", table.indexes[index].name);
    Ok(matches!(details.as_slice(), [one] if one.starts_with("SCAN ") && one.ends_with(&wanted)))
}

/// Adds one value to `hasher` as SQLite's `BINARY` comparison sees it.
fn hash_value(hasher: &mut impl Hasher, value: ValueRef<'_>) {
    match value {
        ValueRef::Null => hasher.write_u8(0),
        ValueRef::Integer(i) => {
            hasher.write_u8(1);
            hasher.write_i64(i);
        }
        ValueRef::Real(r) => match exact_integer(r) {
            Some(i) => {
                hasher.write_u8(1);
                hasher.write_i64(i);
            }
            None => {
                hasher.write_u8(2);
                hasher.write_u64(r.to_bits());
            }
        },
        ValueRef::Text(bytes) => {
            hasher.write_u8(3);
            hasher.write_usize(bytes.len());
            hasher.write(bytes);
        }
        ValueRef::Blob(bytes) => {
            hasher.write_u8(4);
            hasher.write_usize(bytes.len());
            hasher.write(bytes);
        }
    }
}

/// The integer equal to `r`, if there is one (SQLite compares 3 and 3.0,
/// 0 and -0.0 as equal).
fn exact_integer(r: f64) -> Option<i64> {
    // -2^63 <= r < 2^63, both bounds exact in f64.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    (r.fract() == 0.0 && (-LIMIT..LIMIT).contains(&r)).then_some(r as i64)
}

/// The fingerprints of the entries each index of `table` must hold, from
/// its rows with rowids `lo..=hi`, in the order of [`Indexed::indexes`].
pub(crate) fn expected(
    conn: &Connection,
    table: &Indexed,
    lo: i64,
    hi: i64,
    keys: &Keys,
) -> rusqlite::Result<Vec<Fingerprint>> {
    let sql = format!(
        "SELECT {}, {rowid} FROM main.{} NOT INDEXED WHERE {rowid} BETWEEN ?1 AND ?2",
        table.columns.join(", "),
        quote_ident(&table.table),
        rowid = table.rowid,
    );
    let rowid_at = table.columns.len();
    let mut sums = vec![Fingerprint::default(); table.indexes.len()];
    let mut stmt = conn.prepare(&sql)?;
    let mut rows = stmt.query([lo, hi])?;
    while let Some(row) = rows.next()? {
        let rowid = row.get_ref(rowid_at)?;
        for (index, sum) in table.indexes.iter().zip(sums.iter_mut()) {
            let mut hasher = keys.build_hasher();
            for &k in &index.keys {
                hash_value(&mut hasher, row.get_ref(k)?);
            }
            hash_value(&mut hasher, rowid);
            sum.add(hasher.finish());
        }
    }
    Ok(sums)
}

/// A key as [`hash_value`] sees it, kept to compare with the next entry's.
#[derive(Debug, Clone, PartialEq)]
enum Canonical {
    Null,
    Integer(i64),
    Real(u64),
    Text(Vec<u8>),
    Blob(Vec<u8>),
}

impl Canonical {
    fn of(value: ValueRef<'_>) -> Canonical {
        match value {
            ValueRef::Null => Canonical::Null,
            ValueRef::Integer(i) => Canonical::Integer(i),
            ValueRef::Real(r) => {
                exact_integer(r).map_or(Canonical::Real(r.to_bits()), Canonical::Integer)
            }
            ValueRef::Text(t) => Canonical::Text(t.to_vec()),
            ValueRef::Blob(b) => Canonical::Blob(b.to_vec()),
        }
    }
}

/// The fingerprint of the entries index `index` of `table` holds, read in
/// index order; for a `UNIQUE` index, whether two neighbours share a key
/// with no NULL in it.
pub(crate) fn held(
    conn: &Connection,
    table: &Indexed,
    index: usize,
    keys: &Keys,
) -> rusqlite::Result<Held> {
    let columns = table.indexes[index].keys.len();
    let unique = table.indexes[index].unique;
    let mut fingerprint = Fingerprint::default();
    let mut previous: Option<Vec<Canonical>> = None;
    let mut duplicate = None;
    let mut stmt = conn.prepare(&index_scan(table, index))?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let mut hasher = keys.build_hasher();
        for k in 0..=columns {
            hash_value(&mut hasher, row.get_ref(k)?);
        }
        fingerprint.add(hasher.finish());
        if unique && duplicate.is_none() {
            let key = (0..columns)
                .map(|k| row.get_ref(k).map(Canonical::of))
                .collect::<rusqlite::Result<Vec<_>>>()?;
            if previous.as_ref() == Some(&key) && !key.contains(&Canonical::Null) {
                duplicate = Some(format!(
                    "non-unique entry in index {}",
                    table.indexes[index].name
                ));
            }
            previous = Some(key);
        }
    }
    Ok(Held {
        fingerprint,
        duplicate,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table `t` with two indexes, one of them `UNIQUE`, and 1000 rows.
    fn database() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT, b REAL, c BLOB UNIQUE);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000)
             INSERT INTO t SELECT i * 3, 'a' || (i % 17), i / 7.0, randomblob(8) FROM n;
             CREATE INDEX t_ab ON t(a, b);",
        )
        .unwrap();
        conn
    }

    fn table(conn: &Connection) -> Indexed {
        let (mut covered, others) = plan(conn).unwrap();
        assert!(others.is_empty(), "{others:?}");
        covered.pop().unwrap()
    }

    /// The fingerprints each index holds, and those its rows give.
    fn both(conn: &Connection, table: &Indexed, keys: &Keys) -> (Vec<Held>, Vec<Fingerprint>) {
        let (lo, hi) = table.rowids.unwrap();
        let held = (0..table.indexes.len())
            .map(|i| super::held(conn, table, i, keys).unwrap())
            .collect();
        (held, expected(conn, table, lo, hi, keys).unwrap())
    }

    #[test]
    fn every_index_of_a_sound_table_holds_what_its_rows_give_in_any_pieces() {
        let conn = database();
        let table = table(&conn);
        let names: Vec<&str> = table.indexes.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["sqlite_autoindex_t_1", "t_ab"]);
        assert_eq!(table.rowids, Some((3, 3000)));
        let keys = Keys::new();
        let (held, whole) = both(&conn, &table, &keys);
        for (held, expected) in held.iter().zip(&whole) {
            assert_eq!(held.fingerprint, *expected);
            assert_eq!(held.fingerprint.entries, 1000);
            assert_eq!(held.duplicate, None);
        }
        // Pieces of the rows, merged, give the same.
        let mut merged = vec![Fingerprint::default(); 2];
        for (lo, hi) in [(i64::MIN, 0), (1, 1500), (1501, 1502), (1503, i64::MAX)] {
            for (total, piece) in merged
                .iter_mut()
                .zip(expected(&conn, &table, lo, hi, &keys).unwrap())
            {
                total.merge(piece);
            }
        }
        assert_eq!(merged, whole);
    }

    #[test]
    fn an_index_entry_missing_changed_or_added_changes_the_fingerprint() {
        let conn = database();
        let table = table(&conn);
        let keys = Keys::new();
        let (held, expected) = both(&conn, &table, &keys);
        assert_eq!(held[1].fingerprint, expected[1]);
        // Rows written while the index is out of the schema are missing
        // from it, or (deleted) still in it: the table then disagrees.
        let t_ab: String = conn
            .query_row(
                "SELECT sql FROM sqlite_schema WHERE name = 't_ab'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let without_index = |sql: &str| {
            let root: i64 = conn
                .query_row(
                    "SELECT rootpage FROM sqlite_schema WHERE name = 't_ab'",
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            conn.execute_batch(&format!(
                "PRAGMA writable_schema=ON;
                 DELETE FROM sqlite_schema WHERE name = 't_ab';
                 PRAGMA writable_schema=RESET;
                 {sql};
                 PRAGMA writable_schema=ON;
                 INSERT INTO sqlite_schema VALUES ('index', 't_ab', 't', {root}, '{}');
                 PRAGMA writable_schema=RESET;",
                t_ab.replace('\'', "''")
            ))
            .unwrap();
        };
        for (change, entries) in [
            ("UPDATE t SET b = b + 1 WHERE id = 300", 1000),
            ("DELETE FROM t WHERE id = 600", 999),
            ("INSERT INTO t VALUES (1, 'a1', 0, x'00')", 1000),
        ] {
            without_index(change);
            let table = super::plan(&conn).unwrap().0.pop().unwrap();
            let (held, expected) = both(&conn, &table, &keys);
            assert_eq!(
                held[0].fingerprint, expected[0],
                "the unique index follows: {change}"
            );
            assert_ne!(held[1].fingerprint, expected[1], "{change}");
            assert_eq!(expected[1].entries, entries, "{change}");
            assert_eq!(held[1].fingerprint.entries, 1000, "{change}");
        }
    }

    #[test]
    fn values_equal_in_sqlite_hash_alike_and_others_apart() {
        let keys = Keys::new();
        let hash = |v: ValueRef<'_>| {
            let mut h = keys.build_hasher();
            hash_value(&mut h, v);
            h.finish()
        };
        assert_eq!(hash(ValueRef::Integer(3)), hash(ValueRef::Real(3.0)));
        assert_eq!(hash(ValueRef::Integer(0)), hash(ValueRef::Real(-0.0)));
        assert_eq!(
            hash(ValueRef::Integer(i64::MIN)),
            hash(ValueRef::Real(-9_223_372_036_854_775_808.0))
        );
        let distinct = [
            ValueRef::Null,
            ValueRef::Integer(1),
            ValueRef::Real(1.5),
            ValueRef::Real(9_223_372_036_854_775_808.0),
            ValueRef::Real(f64::INFINITY),
            ValueRef::Real(f64::MIN_POSITIVE / 4.0),
            ValueRef::Text(b"1"),
            ValueRef::Blob(b"1"),
            ValueRef::Text(b""),
            ValueRef::Blob(b""),
            ValueRef::Integer(i64::MAX),
        ];
        for (i, a) in distinct.iter().enumerate() {
            for b in &distinct[i + 1..] {
                assert_ne!(hash(*a), hash(*b), "{a:?} {b:?}");
                assert_ne!(Canonical::of(*a), Canonical::of(*b), "{a:?} {b:?}");
            }
        }
        assert_eq!(
            exact_integer(9_223_372_036_854_775_807.0),
            None,
            "2^63 is out of range"
        );
        assert_eq!(exact_integer(-1.0), Some(-1));
        assert_eq!(exact_integer(0.5), None);
    }
}
