//! How an error reads on one line, causes included.

use crate::engine::sqlite::sql::is_result_code;

/// The text of `err` followed by that of each of its causes, joined with
/// ": ", a cause whose text is already there left out: the whole of an
/// error, for a message that embeds another error (whose own message says
/// what failed, `could not read X`, and whose source says why,
/// `permission denied`). SQLite's result code, the source of a
/// [`rusqlite::Error`] that only repeats its message as a number, is left
/// out.
pub fn chain_text(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(e) = cause {
        if is_result_code(e) {
            break;
        }
        let part = e.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        cause = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chain_text_of_a_sqlite_error_leaves_out_its_result_code() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let err = conn.execute_batch("SELECT * FROM missing").unwrap_err();
        assert!(std::error::Error::source(&err).is_some(), "{err:?}");
        assert_eq!(chain_text(&err), err.to_string());
    }
}
