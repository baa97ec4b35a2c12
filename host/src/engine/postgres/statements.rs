//! Finds, before an upgrade starts, the statements of a migration that
//! cannot run inside the upgrade's one transaction on PostgreSQL.
//!
//! The file is split into statements the way `psql` splits it: at
//! semicolons outside quotes ('…', E'…' with backslash escapes, "…"),
//! dollar quotes ($tag$…$tag$), comments (-- and nested /* */) and the
//! `BEGIN ATOMIC … END` body of a function or procedure. Each statement's
//! leading keywords (comments skipped, case ignored) are then matched
//! against what PostgreSQL refuses in a transaction block
//! (`ERRCODE_ACTIVE_SQL_TRANSACTION`: `VACUUM`, `CREATE INDEX
//! CONCURRENTLY`, `DROP INDEX CONCURRENTLY`, `REINDEX … CONCURRENTLY`,
//! `REINDEX SCHEMA|DATABASE|SYSTEM`, `ALTER TABLE … DETACH PARTITION …
//! CONCURRENTLY`, `CREATE|DROP DATABASE`, `ALTER DATABASE … SET
//! TABLESPACE`, `CREATE|DROP TABLESPACE`, `ALTER SYSTEM`, `CREATE|DROP
//! SUBSCRIPTION`, `CLUSTER` without a table, `DISCARD ALL`), against
//! transaction control (`BEGIN`, `START TRANSACTION`, `COMMIT`, `END`,
//! `ROLLBACK`, `ABORT`, `SAVEPOINT`, `RELEASE`, `PREPARE TRANSACTION`,
//! `COMMIT|ROLLBACK PREPARED`), and against `COPY … FROM STDIN`, whose rows
//! only `psql` can send. The server checks the same when the statement
//! runs (and the whole upgrade rolls back then); checking first means
//! nothing starts, no backup is taken, and the message names the file,
//! the line and the statement.

/// A statement that cannot run in the upgrade's transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    /// The line of the migration where the statement starts (1-based).
    pub line: usize,
    /// The statement's leading keywords (`CREATE INDEX CONCURRENTLY`).
    pub statement: String,
    /// Why it cannot run there.
    pub kind: RefusalKind,
}

/// Why a statement is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RefusalKind {
    /// It begins, ends or marks a transaction: uplift's is the only one.
    TransactionControl,
    /// PostgreSQL refuses it inside a transaction block.
    NotInTransaction,
    /// `COPY … FROM STDIN`: its rows come from `psql`, not the server.
    CopyFromStdin,
}

/// The statements of `sql` that cannot run inside the upgrade's
/// transaction, in the file's order.
pub(crate) fn refusals(sql: &str) -> Vec<Refusal> {
    split(sql)
        .into_iter()
        .filter_map(|(line, words)| {
            let (kind, shown) = classify(&words)?;
            Some(Refusal {
                line,
                statement: shown,
                kind,
            })
        })
        .collect()
}

/// Matches one statement's words (upper-cased keywords and identifiers;
/// a parenthesised group is one word, "(") against the refused forms;
/// returns the kind and the words that show it.
fn classify(words: &[String]) -> Option<(RefusalKind, String)> {
    let w = |i: usize| words.get(i).map(String::as_str).unwrap_or("");
    let has = |word: &str| words.iter().any(|x| x == word);
    let shown = |n: usize| words[..n.min(words.len())].join(" ");
    use RefusalKind::*;
    match w(0) {
        "BEGIN" | "COMMIT" | "END" | "ROLLBACK" | "ABORT" | "SAVEPOINT" | "RELEASE" => {
            let n = if matches!(w(1), "PREPARED" | "TO") {
                2
            } else {
                1
            };
            Some((TransactionControl, shown(n)))
        }
        "START" if w(1) == "TRANSACTION" => Some((TransactionControl, shown(2))),
        "PREPARE" if w(1) == "TRANSACTION" => Some((TransactionControl, shown(2))),
        "VACUUM" => Some((NotInTransaction, shown(1))),
        "ALTER" if w(1) == "SYSTEM" => Some((NotInTransaction, shown(2))),
        "ALTER" if w(1) == "DATABASE" && w(3) == "SET" && w(4) == "TABLESPACE" => {
            Some((NotInTransaction, "ALTER DATABASE … SET TABLESPACE".into()))
        }
        "ALTER" if w(1) == "TABLE" && has("DETACH") && has("CONCURRENTLY") => Some((
            NotInTransaction,
            "ALTER TABLE … DETACH PARTITION … CONCURRENTLY".into(),
        )),
        "CREATE" | "DROP" if matches!(w(1), "DATABASE" | "TABLESPACE" | "SUBSCRIPTION") => {
            Some((NotInTransaction, shown(2)))
        }
        "CREATE" if w(1) == "INDEX" && w(2) == "CONCURRENTLY" => Some((NotInTransaction, shown(3))),
        "CREATE" if w(1) == "UNIQUE" && w(2) == "INDEX" && w(3) == "CONCURRENTLY" => {
            Some((NotInTransaction, shown(4)))
        }
        "DROP" if w(1) == "INDEX" && w(2) == "CONCURRENTLY" => Some((NotInTransaction, shown(3))),
        "REINDEX" => {
            // REINDEX [ ( options ) ] { INDEX | TABLE | SCHEMA | DATABASE | SYSTEM } [ CONCURRENTLY ] name
            let at = if w(1) == "(" { 2 } else { 1 };
            let target = w(at);
            if has("CONCURRENTLY") {
                Some((NotInTransaction, format!("REINDEX {target} CONCURRENTLY")))
            } else if matches!(target, "SCHEMA" | "DATABASE" | "SYSTEM") {
                Some((NotInTransaction, format!("REINDEX {target}")))
            } else {
                None
            }
        }
        "CLUSTER" if words.len() == 1 || (words.len() == 2 && w(1) == "VERBOSE") => {
            Some((NotInTransaction, "CLUSTER (of every table)".into()))
        }
        "DISCARD" if w(1) == "ALL" => Some((NotInTransaction, shown(2))),
        "COPY" if has("FROM") && has("STDIN") => Some((CopyFromStdin, "COPY … FROM STDIN".into())),
        _ => None,
    }
}

/// At most this many words of a statement are kept: every form above is
/// told by its first words, but for the few that look further.
const WORDS_KEPT: usize = 64;

/// Splits `sql` into statements: each one's first line and its words.
fn split(sql: &str) -> Vec<(usize, Vec<String>)> {
    let bytes = sql.as_bytes();
    let mut statements = Vec::new();
    let mut words: Vec<String> = Vec::new();
    let mut start_line = 0usize;
    let mut line = 1usize;
    // The depth of BEGIN/CASE … END inside a routine's SQL-standard body.
    let mut atomic_depth = 0usize;
    let mut paren_depth = 0usize;
    let mut i = 0;
    let finish = |words: &mut Vec<String>, start_line: &mut usize, out: &mut Vec<_>| {
        if !words.is_empty() {
            out.push((*start_line, std::mem::take(words)));
        }
        *start_line = 0;
    };
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'\n' {
            line += 1;
            i += 1;
            continue;
        }
        if b.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        // Comments.
        if b == b'-' && bytes.get(i + 1) == Some(&b'-') {
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        if b == b'/' && bytes.get(i + 1) == Some(&b'*') {
            let mut depth = 0usize;
            while i < bytes.len() {
                if bytes[i] == b'/' && bytes.get(i + 1) == Some(&b'*') {
                    depth += 1;
                    i += 2;
                } else if bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if bytes[i] == b'\n' {
                        line += 1;
                    }
                    i += 1;
                }
            }
            continue;
        }
        if start_line == 0 {
            start_line = line;
        }
        match b {
            b';' if atomic_depth == 0 => {
                paren_depth = 0;
                finish(&mut words, &mut start_line, &mut statements);
                i += 1;
            }
            b'\'' => {
                // E'…' takes backslash escapes; the E was read as a word.
                let escapes = i >= 1
                    && bytes[i - 1].eq_ignore_ascii_case(&b'e')
                    && (i == 1 || !is_word_byte(bytes[i - 2]));
                if escapes && paren_depth == 0 && words.last().is_some_and(|w| w == "E") {
                    words.pop();
                }
                i = skip_quoted(bytes, i, b'\'', escapes, &mut line);
                push(&mut words, "'", paren_depth);
            }
            b'"' => {
                let end = skip_quoted(bytes, i, b'"', false, &mut line);
                let ident = sql[i + 1..end.saturating_sub(1).max(i + 1)].replace("\"\"", "\"");
                push(&mut words, &ident, paren_depth);
                i = end;
            }
            b'$' => match dollar_tag(bytes, i) {
                Some(tag_len) => {
                    let tag = &bytes[i..i + tag_len];
                    let mut j = i + tag_len;
                    loop {
                        if j >= bytes.len() {
                            break;
                        }
                        if bytes[j..].starts_with(tag) {
                            j += tag_len;
                            break;
                        }
                        if bytes[j] == b'\n' {
                            line += 1;
                        }
                        j += 1;
                    }
                    push(&mut words, "$", paren_depth);
                    i = j;
                }
                None => i += 1,
            },
            b'(' => {
                push(&mut words, "(", paren_depth);
                paren_depth += 1;
                i += 1;
            }
            b')' => {
                paren_depth = paren_depth.saturating_sub(1);
                i += 1;
            }
            _ if b.is_ascii_alphabetic() || b == b'_' || b >= 0x80 => {
                let mut j = i;
                while j < bytes.len() && is_word_byte(bytes[j]) {
                    j += 1;
                }
                let word = sql[i..j].to_ascii_uppercase();
                if is_routine(&words) {
                    match word.as_str() {
                        "BEGIN" if paren_depth == 0 => atomic_depth += 1,
                        "CASE" if atomic_depth > 0 => atomic_depth += 1,
                        "END" if atomic_depth > 0 => atomic_depth -= 1,
                        _ => {}
                    }
                }
                push(&mut words, &word, paren_depth);
                i = j;
            }
            _ => i += 1,
        }
    }
    finish(&mut words, &mut start_line, &mut statements);
    statements
}

/// Whether `b` continues a keyword or an unquoted identifier.
fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

/// Keeps a word of the statement (only those outside parentheses, and a
/// "(" for each group, so that `REINDEX (VERBOSE) TABLE` reads as such).
fn push(words: &mut Vec<String>, word: &str, paren_depth: usize) {
    if paren_depth == 0 && words.len() < WORDS_KEPT {
        words.push(word.to_string());
    }
}

/// Whether the statement so far creates a function or procedure, whose
/// `BEGIN ATOMIC … END` body holds semicolons.
fn is_routine(words: &[String]) -> bool {
    let mut rest = words;
    if rest.first().map(String::as_str) != Some("CREATE") {
        return false;
    }
    rest = &rest[1..];
    if rest.len() >= 2 && rest[0] == "OR" && rest[1] == "REPLACE" {
        rest = &rest[2..];
    }
    matches!(
        rest.first().map(String::as_str),
        Some("FUNCTION" | "PROCEDURE")
    )
}

/// Skips a quoted string or identifier starting at `i` (its opening
/// quote); returns the index after its closing quote. A doubled quote is
/// one quote; with `escapes`, a backslash escapes the next byte.
fn skip_quoted(bytes: &[u8], i: usize, quote: u8, escapes: bool, line: &mut usize) -> usize {
    let mut j = i + 1;
    while j < bytes.len() {
        match bytes[j] {
            b'\\' if escapes => j += 2,
            b'\n' => {
                *line += 1;
                j += 1;
            }
            q if q == quote => {
                if bytes.get(j + 1) == Some(&quote) {
                    j += 2;
                } else {
                    return j + 1;
                }
            }
            _ => j += 1,
        }
    }
    bytes.len()
}

/// The length of the dollar-quote tag (`$$`, `$body$`) starting at `i`,
/// if one does.
fn dollar_tag(bytes: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    while j < bytes.len() && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_') {
        if j == i + 1 && bytes[j].is_ascii_digit() {
            return None; // $1: a parameter
        }
        j += 1;
    }
    (bytes.get(j) == Some(&b'$')).then_some(j + 1 - i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(sql: &str) -> Vec<(usize, String)> {
        refusals(sql)
            .into_iter()
            .map(|r| (r.line, r.statement))
            .collect()
    }

    #[test]
    fn refuses_what_cannot_run_in_a_transaction_block() {
        let sql = "CREATE TABLE t (id int);\n\
                   create index concurrently t_id on t (id);\n\
                   CREATE UNIQUE INDEX CONCURRENTLY u ON t (id);\n\
                   VACUUM ANALYZE t;\n\
                   ALTER SYSTEM SET work_mem = '1MB';\n\
                   REINDEX (VERBOSE) TABLE CONCURRENTLY t;\n\
                   REINDEX DATABASE app;\n\
                   REINDEX TABLE t;\n\
                   CREATE DATABASE other;\n\
                   DROP INDEX CONCURRENTLY t_id;\n\
                   ALTER TABLE p DETACH PARTITION p1 CONCURRENTLY;\n\
                   ALTER DATABASE app SET TABLESPACE fast;\n\
                   CLUSTER;\n\
                   CLUSTER t USING t_id;\n";
        assert_eq!(
            shown(sql),
            vec![
                (2, "CREATE INDEX CONCURRENTLY".into()),
                (3, "CREATE UNIQUE INDEX CONCURRENTLY".into()),
                (4, "VACUUM".into()),
                (5, "ALTER SYSTEM".into()),
                (6, "REINDEX TABLE CONCURRENTLY".into()),
                (7, "REINDEX DATABASE".into()),
                (9, "CREATE DATABASE".into()),
                (10, "DROP INDEX CONCURRENTLY".into()),
                (11, "ALTER TABLE … DETACH PARTITION … CONCURRENTLY".into()),
                (12, "ALTER DATABASE … SET TABLESPACE".into()),
                (13, "CLUSTER (of every table)".into()),
            ]
        );
    }

    #[test]
    fn refuses_transaction_control_and_copy_from_stdin() {
        let found = refusals("BEGIN;\nINSERT INTO t VALUES (1);\nCOMMIT;\nCOPY t FROM stdin;\n");
        let kinds: Vec<_> = found.iter().map(|r| (r.line, r.kind)).collect();
        assert_eq!(
            kinds,
            vec![
                (1, RefusalKind::TransactionControl),
                (3, RefusalKind::TransactionControl),
                (4, RefusalKind::CopyFromStdin),
            ]
        );
    }

    #[test]
    fn words_inside_strings_comments_and_bodies_are_not_statements() {
        let sql = "-- VACUUM;\n/* CREATE DATABASE x; /* nested; */ COMMIT; */\n\
                   INSERT INTO notes VALUES ('VACUUM; COMMIT;', E'it\\'s; VACUUM', \"odd;name\");\n\
                   CREATE FUNCTION f() RETURNS void AS $body$ BEGIN COMMIT; END $body$ LANGUAGE plpgsql;\n\
                   DO $$ BEGIN PERFORM 1; END $$;\n\
                   CREATE OR REPLACE PROCEDURE p() LANGUAGE SQL BEGIN ATOMIC\n\
                     INSERT INTO t VALUES (CASE WHEN true THEN 1 END);\n\
                     INSERT INTO t VALUES (2);\n\
                   END;\n\
                   VACUUM;\n";
        assert_eq!(shown(sql), vec![(10, "VACUUM".into())]);
    }

    #[test]
    fn a_prepared_statement_is_not_a_prepared_transaction() {
        assert!(refusals("PREPARE q AS SELECT 1; EXECUTE q;").is_empty());
        assert_eq!(
            shown("PREPARE TRANSACTION 'x';"),
            vec![(1, "PREPARE TRANSACTION".into())]
        );
    }
}
