//! The dump reader, differentially, before anything runs: how `dbrestore`
//! splits a dump it did not write into statements and parses the literal
//! values of its `INSERT`s (`uplift::internals::read_dump`, the restore's
//! own splitter and parser).
//!
//! - It never panics, and reads the same whatever its buffer size (a
//!   statement may straddle any number of refills), and with a lower limit
//!   on a statement's length either reads the same or refuses.
//! - Its statements are SQLite's: each ends at the first `;` where
//!   `sqlite3_complete()` says the text is complete, and the text is
//!   refused as unfinished exactly when something but whitespace and closed
//!   comments follows the last one.
//! - The values it binds are SQLite's: for each `INSERT` it parses, SQLite
//!   evaluating the same `VALUES(...)` text gets the same values, bit for
//!   bit.
//!
//! Input: one control byte (its low 6 bits: the buffer size less 1; bit 6:
//! also read with a 64-byte statement limit), then the dump's text.
#![no_main]

use std::cell::RefCell;

use libfuzzer_sys::fuzz_target;
use rusqlite::Connection;
use uplift::backup::SplitError;
use uplift::internals::{self, DumpStatement, DumpValue};
use uplift_fuzz::sqlite_oracle::{self, Cell};

const LIMIT: usize = 1 << 20;

thread_local! {
    /// The connection SQLite evaluates values on (it holds nothing).
    static SQLITE: RefCell<Connection> = RefCell::new(Connection::open_in_memory().expect("an in-memory database"));
}

fn cell(value: &DumpValue) -> Cell {
    match value {
        DumpValue::Null => Cell::Null,
        DumpValue::Integer(n) => Cell::Integer(*n),
        DumpValue::Real(f) => Cell::Real(f.to_bits()),
        DumpValue::Text(t) => Cell::Text(t.clone()),
        DumpValue::Blob(b) => Cell::Blob(b.clone()),
    }
}

fn same(
    a: &Result<Vec<DumpStatement>, SplitError>,
    b: &Result<Vec<DumpStatement>, SplitError>,
) -> bool {
    match (a, b) {
        (Ok(a), Ok(b)) => a == b,
        (Err(a), Err(b)) => a.to_string() == b.to_string(),
        _ => false,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, text)) = data.split_first() else {
        return;
    };
    let whole = internals::read_dump(text, 1 << 16, LIMIT);
    let buffer = 1 + usize::from(control & 0x3f);
    let pieces = internals::read_dump(text, buffer, LIMIT);
    assert!(
        same(&whole, &pieces),
        "a buffer of {buffer} bytes reads {pieces:?}, a whole one {whole:?}"
    );
    if control & 0x40 != 0 {
        match internals::read_dump(text, buffer, 64) {
            Ok(limited) => assert!(
                same(&Ok(limited), &whole),
                "a 64-byte limit reads otherwise"
            ),
            Err(SplitError::TooLarge { .. }) => {}
            Err(e) => assert!(same(&Err(e), &whole), "a 64-byte limit fails otherwise"),
        }
    }

    if let Some((expected, rest)) = sqlite_oracle::split(text) {
        match &whole {
            Ok(statements) => {
                let texts: Vec<&[u8]> = statements.iter().map(|s| s.text.as_slice()).collect();
                assert_eq!(
                    texts, expected,
                    "the statements differ from sqlite3_complete's"
                );
                assert!(
                    rest.is_empty(),
                    "the text ends inside a statement, unnoticed: {rest:?}"
                );
            }
            Err(SplitError::Unfinished { .. } | SplitError::UnclosedComment { .. }) => {
                assert!(
                    !rest.is_empty(),
                    "refused as unfinished, but complete by sqlite3_complete"
                )
            }
            Err(e) => panic!("{e}"),
        }
    }

    let Ok(statements) = whole else {
        return;
    };
    SQLITE.with_borrow(|conn| {
        for statement in &statements {
            let Some((head, _, values)) = &statement.insert else {
                continue;
            };
            assert!(statement.text.starts_with(head));
            let Ok(list) = std::str::from_utf8(&statement.text[head.len()..]) else {
                continue;
            };
            let Some(expected) = sqlite_oracle::values(conn, list) else {
                panic!("uplift binds the values of {list:?}, which SQLite refuses");
            };
            let got: Vec<Cell> = values.iter().map(cell).collect();
            assert_eq!(got, expected, "the values of {list:?} differ from SQLite's");
        }
    });
});
