//! What an engine's steps fail with, engine-neutral.

/// A failure of the database engine itself, kept as the engine reported it.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct EngineError(Box<dyn std::error::Error + Send + Sync>);

impl EngineError {
    /// Wraps an engine's own error.
    pub(crate) fn new(source: impl std::error::Error + Send + Sync + 'static) -> EngineError {
        EngineError(Box::new(source))
    }

    /// The engine's own error, when it is a `T`.
    pub(crate) fn downcast<T: std::error::Error + 'static>(self) -> Result<T, EngineError> {
        self.0.downcast::<T>().map(|e| *e).map_err(EngineError)
    }
}

/// Errors reading or writing uplift's bookkeeping in the database.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetaError {
    /// The engine failed.
    #[error("database error")]
    Database(#[from] EngineError),
    /// The stored data version does not parse.
    #[error("the database records data version {stored:?}, which is not a valid version")]
    BadVersion {
        /// What the database holds.
        stored: String,
        /// Why it does not parse.
        #[source]
        source: crate::version::VersionError,
    },
    /// A plugin's recorded version does not parse.
    #[error(
        "the database records plugin {plugin} at version {stored:?}, which is not a valid version: \
         restore a backup (`uplift dbrestore --latest`)"
    )]
    BadPluginVersion {
        /// The plugin.
        plugin: String,
        /// What the database holds.
        stored: String,
        /// Why it does not parse (boxed: it is rare, and the error stays small).
        #[source]
        source: Box<crate::version::VersionError>,
    },
}

impl MetaError {
    /// What kind of failure this is, as a stable word for machines
    /// (`docs/errors.md` lists them): `bookkeeping`, as in
    /// [`crate::UpgradeError::code`].
    pub fn code(&self) -> &'static str {
        "bookkeeping"
    }
}

/// Why a commit did not happen.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum CommitError {
    /// The engine had already ended the transaction (after a full disk, an
    /// I/O error, no memory...), or commits outside the upgrade's own were
    /// turned back: nothing is committed.
    #[error("the transaction had already ended")]
    Lost {
        /// Commits attempted outside the upgrade's own COMMIT and turned
        /// into rollbacks.
        refused: u64,
    },
    /// The commit itself failed; nothing is committed.
    #[error(transparent)]
    Failed(EngineError),
}
