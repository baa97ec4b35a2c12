//! Errors of hooks: [`DbError`] from the database, [`ConversionError`] from
//! reading a value, and [`Error`], which holds either or any other error.

use std::fmt;

/// A statement failed: SQLite's error, or the sandbox's refusal (code 23,
/// `SQLITE_AUTH`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbError {
    /// SQLite's primary result code (1 = `SQLITE_ERROR`, 19 =
    /// `SQLITE_CONSTRAINT`, 23 = `SQLITE_AUTH`, ...).
    pub code: i32,
    /// SQLite's extended result code (equal to `code` when there is none).
    pub extended_code: i32,
    /// SQLite's message, or the sandbox's reason.
    pub message: String,
    /// The statement concerned, when there is one.
    pub sql: Option<String>,
}

impl DbError {
    /// SQLite's `SQLITE_AUTH`: the sandbox refused the statement because the
    /// plugin's manifest does not allow it.
    pub const AUTH: i32 = 23;
    /// SQLite's `SQLITE_CONSTRAINT`.
    pub const CONSTRAINT: i32 = 19;

    /// Whether the sandbox refused the statement (code 23, `SQLITE_AUTH`).
    pub fn is_refusal(&self) -> bool {
        self.code == Self::AUTH
    }

    pub(crate) fn from_wit(
        e: crate::bindings::uplift::hooks::types::DbError,
        sql: &str,
    ) -> DbError {
        DbError {
            code: e.code,
            extended_code: e.extended_code,
            message: e.message,
            sql: Some(sql.to_string()),
        }
    }
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (SQLite code {}", self.message, self.code)?;
        if self.extended_code != self.code {
            write!(f, ", extended {}", self.extended_code)?;
        }
        f.write_str(")")?;
        if let Some(sql) = &self.sql {
            write!(f, " in `{}`", abbreviate(sql))?;
        }
        Ok(())
    }
}

impl std::error::Error for DbError {}

/// A column could not be read into the Rust type asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversionError {
    /// The column, as `column "name"` or `column 2`.
    pub column: String,
    /// What the Rust type accepts.
    pub expected: &'static str,
    /// What was there.
    pub found: String,
}

impl fmt::Display for ConversionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot read {}: expected {}, found {}",
            self.column, self.expected, self.found
        )
    }
}

impl std::error::Error for ConversionError {}

#[derive(Debug)]
struct Message(String);

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Message {}

/// Any failure of a hook. Like `anyhow::Error`, anything that implements
/// `std::error::Error` converts into it with `?`; [`Error::msg`] and
/// [`bail!`](crate::bail) make one from text; [`Error::database`] gives back
/// the SQLite details when there are some.
pub struct Error {
    inner: Box<dyn std::error::Error + Send + Sync + 'static>,
}

/// `Result<T, uplift_hooks_sdk::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error with this text.
    pub fn msg(message: impl fmt::Display) -> Error {
        Error {
            inner: Box::new(Message(message.to_string())),
        }
    }

    /// The database error inside, if this is one (to check its `code`).
    pub fn database(&self) -> Option<&DbError> {
        self.inner.downcast_ref::<DbError>()
    }

    /// The conversion error inside, if this is one.
    pub fn conversion(&self) -> Option<&ConversionError> {
        self.inner.downcast_ref::<ConversionError>()
    }

    /// Adds what was being done in front of the message:
    /// `db.execute(...).map_err(|e| e.context("copying scores"))`.
    pub fn context(self, what: impl fmt::Display) -> Error {
        Error::msg(format!("{what}: {self}"))
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for Error {
    fn from(error: E) -> Error {
        Error {
            inner: Box::new(error),
        }
    }
}

impl fmt::Display for Error {
    /// The message, followed by its causes separated by `: `.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.inner)?;
        let mut source = self.inner.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

fn abbreviate(sql: &str) -> String {
    let one_line: String = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > 120 {
        let cut: String = one_line.chars().take(117).collect();
        format!("{cut}...")
    } else {
        one_line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_error_keeps_its_code_through_question_mark() {
        fn fails() -> Result<()> {
            Err(DbError {
                code: 23,
                extended_code: 23,
                message: "not authorized".into(),
                sql: Some("DROP TABLE learner".into()),
            })?;
            Ok(())
        }
        let err = fails().unwrap_err();
        assert!(err.database().is_some_and(DbError::is_refusal));
        assert_eq!(
            err.to_string(),
            "not authorized (SQLite code 23) in `DROP TABLE learner`"
        );
    }

    #[test]
    fn long_statements_are_abbreviated_on_one_line() {
        let sql = format!("SELECT\n  {}", "x, ".repeat(100));
        let shown = abbreviate(&sql);
        assert!(shown.len() <= 120 && !shown.contains('\n') && shown.ends_with("..."));
    }
}
