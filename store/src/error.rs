//! What a backend may fail with.

/// A storage failure. Never swallowed: the write is refused, or the module does not open.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The database said no (disk full, read-only file, lost connection, corruption...).
    #[error("database error: {0}")]
    Database(String),
    /// A stored value is not what we wrote.
    #[error("corrupt data: {0}")]
    Corrupt(String),
    /// The schema changed in a way that would lose data.
    #[error("refusing destructive schema change on `{table}`: {message}")]
    Destructive {
        table: String,
        /// What changed.
        message: String,
    },
    /// A unique constraint was violated.
    #[error("unique constraint violated on `{table}`: {message}")]
    Unique {
        table: String,
        /// The database's message.
        message: String,
    },
    /// A record longer than the server stores (`--max-record-bytes`); nothing was written.
    #[error("a `{table}` record of {bytes} bytes is larger than the {max} bytes a record may have")]
    TooLarge { table: String, bytes: usize, max: usize },
    /// What this backend does not do (yet); nothing was changed.
    #[error("{0} is not available on this storage backend")]
    Unsupported(String),
    /// Files could not be created.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

impl StorageError {
    /// `storage-error`, `unique-violation`, `destructive-migration`, `record-too-large`, `not-supported`.
    pub fn code(&self) -> &'static str {
        match self {
            StorageError::Unique { .. } => "unique-violation",
            StorageError::Destructive { .. } => "destructive-migration",
            StorageError::TooLarge { .. } => "record-too-large",
            StorageError::Unsupported(_) => "not-supported",
            _ => "storage-error",
        }
    }
}
