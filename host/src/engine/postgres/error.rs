//! What the PostgreSQL engine fails with, each naming the database, the
//! server or the tool concerned and what to do.

use std::path::PathBuf;

/// A failure of the PostgreSQL engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PgError {
    /// `[database]` in `uplift.toml` is not valid.
    #[error("invalid settings file {path}: [database] {message}")]
    Settings {
        /// The settings file.
        path: PathBuf,
        /// What is wrong, and what to write instead.
        message: String,
    },
    /// `password_file` could not be read.
    #[error("could not read the password file {path} ([database] password_file in uplift.toml)")]
    PasswordFile {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The server did not answer.
    #[error(
        "could not reach the PostgreSQL server at {server}: start it, or fix [database] in {}",
        settings.display()
    )]
    Unreachable {
        /// The server, as configured.
        server: String,
        /// The settings file that names it.
        settings: PathBuf,
        /// The client's error.
        #[source]
        source: postgres::Error,
    },
    /// The server answered, but has no such database.
    #[error(
        "the PostgreSQL server at {server} has no database {dbname:?}: create it (`createdb {dbname}`, \
         owned by the application's role), or fix [database] in {}",
        settings.display()
    )]
    NoDatabase {
        /// The database's name.
        dbname: String,
        /// The server.
        server: String,
        /// The settings file that names it.
        settings: PathBuf,
    },
    /// The server refused the role (a wrong or missing password, a role
    /// that does not exist or may not log in).
    #[error(
        "the PostgreSQL server at {server} refused role {user:?}: give its password in PGPASSWORD or \
         in the file [database] password_file names in {}, or fix the role",
        settings.display()
    )]
    Refused {
        /// The role.
        user: String,
        /// The server.
        server: String,
        /// The settings file.
        settings: PathBuf,
        /// The server's answer.
        #[source]
        source: postgres::Error,
    },
    /// A statement of uplift's own failed.
    #[error("PostgreSQL could not {what}")]
    Sql {
        /// What uplift was doing, as a verb phrase.
        what: String,
        /// The server's error.
        #[source]
        source: postgres::Error,
    },
    /// Another uplift holds the database's upgrade lock.
    #[error(
        "another uplift is upgrading {database} ({holder}): nothing was changed; run uplift again once it is done"
    )]
    OtherUplift {
        /// The database.
        database: String,
        /// Its session, as far as the server tells.
        holder: String,
    },
    /// Another uplift upgraded the database between this one's reading it
    /// and its taking the upgrade lock.
    #[error(
        "another uplift changed {database} after this one read it (data version {before} → {after}): \
         nothing was changed; run uplift again"
    )]
    ChangedMeanwhile {
        /// The database.
        database: String,
        /// What this uplift had read.
        before: String,
        /// What the database holds now.
        after: String,
    },
    /// The application's sessions kept its tables locked.
    #[error(
        "could not lock the application's tables of {database} within {seconds} s: {holders} hold \
         them; stop the application (or end those sessions) and run uplift again; nothing was changed"
    )]
    TablesBusy {
        /// The database.
        database: String,
        /// How long uplift waited.
        seconds: u64,
        /// The sessions holding locks on them.
        holders: String,
    },
    /// A PostgreSQL tool was not found.
    #[error(
        "{tool} not found (looked in {looked}): install Debian's postgresql-client package \
         (of the server's major version or newer)"
    )]
    ToolMissing {
        /// The tool (`pg_dump`).
        tool: &'static str,
        /// Where it was looked for.
        looked: String,
    },
    /// Something uplift does on SQLite that is not built for PostgreSQL.
    #[error("{what} is not available on PostgreSQL yet: {instead}")]
    Unsupported {
        /// What was asked.
        what: &'static str,
        /// What to do instead.
        instead: &'static str,
    },
}

impl PgError {
    /// The stable word `uplift upgrade --json` reports for it.
    pub fn code(&self) -> &'static str {
        match self {
            PgError::Settings { .. } | PgError::PasswordFile { .. } => "home",
            PgError::Unreachable { .. } | PgError::NoDatabase { .. } | PgError::Refused { .. } => {
                "database-open"
            }
            PgError::OtherUplift { .. } | PgError::ChangedMeanwhile { .. } => "database-locked",
            PgError::TablesBusy { .. } => "in-use",
            PgError::ToolMissing { .. } | PgError::Sql { .. } | PgError::Unsupported { .. } => {
                "database"
            }
        }
    }

    /// A failed statement of uplift's own, saying what it was for.
    pub(crate) fn sql(what: impl Into<String>) -> impl FnOnce(postgres::Error) -> PgError {
        let what = what.into();
        move |source| PgError::Sql { what, source }
    }
}
