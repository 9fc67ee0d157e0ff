//! The crate's error type.

use std::io;

use crate::Column;

/// `Result` with this crate's [`Error`] as the default error.
///
/// # Examples
///
/// ```
/// use rswoole_shm::{Atomic, Result};
/// fn visits() -> Result<u64> {
///     let hits = Atomic::new(0)?;
///     Ok(hits.add(1))
/// }
/// assert_eq!(visits()?, 1);
/// # Ok::<(), rswoole_shm::Error>(())
/// ```
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong with a [`Table`](crate::Table),
/// [`Atomic`](crate::Atomic) or [`Lock`](crate::Lock).
///
/// No operation that returns an error has changed the table: values are
/// validated before anything is written. Callers keep ownership of what they
/// passed in (keys and values are borrowed), so nothing is lost.
///
/// The `Display` text is for humans and may change; match on the variants.
///
/// # Examples
///
/// ```
/// use rswoole_shm::{Column, Error, Table};
/// let t = Table::builder(1).column("n", Column::Int).build()?;
/// t.set("a", &[("n", 1.into())])?;
/// assert!(matches!(t.set("b", &[("n", 2.into())]), Err(Error::Full { capacity: 1 })));
/// assert!(matches!(t.incr("a", "m", 1), Err(Error::UnknownColumn { .. })));
/// assert!(matches!(t.get("k".repeat(300)), Err(Error::KeyTooLong { len: 300 })));
/// # Ok::<(), rswoole_shm::Error>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The key is longer than [`MAX_KEY_LEN`](crate::MAX_KEY_LEN) bytes.
    /// Use a shorter key, e.g. a hash of the long one.
    #[error("key is {len} bytes long; the maximum is {max}", max = crate::MAX_KEY_LEN)]
    KeyTooLong {
        /// Length of the rejected key.
        len: usize,
    },
    /// A string is longer than its column's declared size. Build the table
    /// with a wider `Column::Str(n)` or truncate the value.
    #[error("value for column `{column}` is {len} bytes long; the column holds at most {max}")]
    StrTooLong {
        /// The column.
        column: String,
        /// Length of the rejected value.
        len: usize,
        /// The column's declared size.
        max: usize,
    },
    /// The table has no column with this name (a typo, or a table built with
    /// other columns).
    #[error("no column named `{column}`")]
    UnknownColumn {
        /// The name that was asked for.
        column: String,
    },
    /// The value's type does not fit the column: a string for a number
    /// column, a float for an int column, or `incr` on the wrong kind of
    /// column. (An `Int` value is accepted by a `Float` column.)
    #[error("column `{column}` holds {expected}, which this value or operation does not fit")]
    TypeMismatch {
        /// The column.
        column: String,
        /// What the column holds.
        expected: Column,
    },
    /// Every row is in use. A table built for `capacity` rows holds exactly
    /// that many whatever the keys; delete rows or build a larger table.
    #[error("table is full: all {capacity} rows are in use")]
    Full {
        /// Rows the table holds.
        capacity: usize,
    },
    /// The builder's description is invalid (no columns, a duplicate or
    /// over-long column name, zero rows, a zero-size string column...).
    /// This is a programming error: fix the `Table::builder` call.
    #[error("invalid table layout: {reason}")]
    InvalidSchema {
        /// What is wrong.
        reason: String,
    },
    /// A persistent table name must be 1 to 200 bytes of `[A-Za-z0-9_.-]`.
    #[error("invalid persistent table name `{name}`: use 1-200 characters from [A-Za-z0-9_.-]")]
    InvalidName {
        /// The rejected name.
        name: String,
    },
    /// No persistent table with this name exists (`rswoole table list`
    /// shows the ones that do).
    #[error("no persistent table named `{name}`")]
    NotFound {
        /// The name that was asked for.
        name: String,
    },
    /// A persistent table with this name exists with another layout
    /// (columns or row count changed since it was created). Its data is left
    /// untouched: open it with its own layout, or remove it
    /// (`rswoole table rm NAME`) to start afresh.
    #[error("persistent table `{name}` has layout {found}, but {expected} was requested")]
    LayoutMismatch {
        /// The table name.
        name: String,
        /// The layout that was asked for.
        expected: String,
        /// The layout found in the segment.
        found: String,
    },
    /// The segment is not a usable rswoole table: wrong magic or version,
    /// truncated, or its creator died before finishing initialisation.
    /// Remove it (`rswoole table rm NAME`).
    #[error("persistent table `{name}` is unusable: {reason}")]
    Corrupt {
        /// The table name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Another process kept the persistent table's creation lock for too
    /// long (10 s) while attaching; try again.
    #[error("timed out attaching persistent table `{name}`: another process is creating it")]
    Busy {
        /// The table name.
        name: String,
    },
    /// The calling thread already holds this lock; locking it again would
    /// deadlock. This is a bug in the caller.
    #[error("this thread already holds the lock")]
    WouldDeadlock,
    /// An operating-system call failed (out of memory, `/dev/shm` full,
    /// permissions...).
    #[error("{op} failed: {source}")]
    Os {
        /// The operation that failed.
        op: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

impl Error {
    pub(crate) fn os(op: &'static str) -> impl FnOnce(io::Error) -> Error {
        move |source| Error::Os { op, source }
    }

    pub(crate) fn schema(reason: impl Into<String>) -> Error {
        Error::InvalidSchema {
            reason: reason.into(),
        }
    }
}

impl From<crate::sys::LockError> for Error {
    fn from(e: crate::sys::LockError) -> Error {
        match e {
            crate::sys::LockError::WouldDeadlock => Error::WouldDeadlock,
            crate::sys::LockError::Os(source) => Error::Os {
                op: "pthread_mutex_lock",
                source,
            },
        }
    }
}
