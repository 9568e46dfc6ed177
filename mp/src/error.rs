//! [`Error`]: the one error type of `mp`, and its Python analogues.

use std::fmt;

/// Every fallible call in `mp` returns this.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The errors of `mp`; each variant names the Python exception it stands for.
///
/// ```
/// let e = mp::Error::Timeout;
/// assert_eq!(e.to_string(), "timed out");
/// ```
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `multiprocessing.TimeoutError`.
    #[error("timed out")]
    Timeout,
    /// `queue.Empty`.
    #[error("queue is empty")]
    Empty,
    /// `queue.Full`.
    #[error("queue is full")]
    Full,
    /// `EOFError`: the peer closed and nothing is left to read.
    #[error("end of file: the peer closed the connection")]
    Eof,
    /// `multiprocessing.BufferTooShort`; carries the whole message that did not fit.
    #[error("buffer too short for a message of {} bytes", message.len())]
    BufferTooShort {
        /// The complete message.
        message: Vec<u8>,
    },
    /// `multiprocessing.AuthenticationError`.
    #[error("authentication failed: {0}")]
    Authentication(String),
    /// `multiprocessing.managers.RemoteError`, or an exception re-raised from a manager or pool.
    #[error("remote {kind}: {message}")]
    Remote {
        /// The kind of failure (`"Panic"`, `"IndexError"`, `"KeyError"`, …).
        kind: String,
        /// Its message.
        message: String,
        /// Where it happened, when known.
        traceback: String,
    },
    /// An exception raised inside a task (`task` is the registered path, e.g. `my_crate::square`).
    #[error("task {task} panicked: {message}")]
    TaskPanicked {
        /// The registered path of the task.
        task: String,
        /// The panic message.
        message: String,
        /// The backtrace, when captured.
        backtrace: String,
    },
    /// A worker process died while it held a task (Python's pool would hang).
    #[error("worker process {pid} died with exit code {exitcode}")]
    WorkerDied {
        /// Its pid.
        pid: u32,
        /// Its exit code (`-N` for signal N).
        exitcode: i32,
    },
    /// `threading.BrokenBarrierError`.
    #[error("barrier is broken")]
    BrokenBarrier,
    /// A function was passed as a task but never registered with `#[mp::task]`
    /// (Python: `AttributeError` in a spawned child).
    #[error("{name} is not registered as a task: annotate it with #[mp::task]")]
    NotRegistered {
        /// The function's path.
        name: String,
    },
    /// A proxy method that the referent does not expose.
    #[error("method {method:?} is not exposed")]
    NotExposed {
        /// The method's name.
        method: String,
    },
    /// Misuse: `ValueError`, `AssertionError` or `RuntimeError` in Python.
    #[error("{0}")]
    InvalidState(String),
    /// A message longer than the `maxlength` given to `recv_bytes` (Python: `OSError`).
    #[error("message of {len} bytes exceeds the maximum of {max}")]
    MessageTooLarge {
        /// The message's length.
        len: usize,
        /// The maximum allowed.
        max: usize,
    },
    /// Encoding or decoding failed (Python: pickling errors). Never a panic on bad bytes.
    #[error("codec error: {0}")]
    Codec(String),
    /// `OSError`.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(e) => f.debug_tuple("Io").field(e).finish(),
            Error::BufferTooShort { message } => f
                .debug_struct("BufferTooShort")
                .field("len", &message.len())
                .finish(),
            other => write!(f, "{}({other})", other.variant_name()),
        }
    }
}

impl Error {
    /// The variant's name, for messages and `Debug`.
    pub fn variant_name(&self) -> &'static str {
        match self {
            Error::Timeout => "Timeout",
            Error::Empty => "Empty",
            Error::Full => "Full",
            Error::Eof => "Eof",
            Error::BufferTooShort { .. } => "BufferTooShort",
            Error::Authentication(_) => "Authentication",
            Error::Remote { .. } => "Remote",
            Error::TaskPanicked { .. } => "TaskPanicked",
            Error::WorkerDied { .. } => "WorkerDied",
            Error::BrokenBarrier => "BrokenBarrier",
            Error::NotRegistered { .. } => "NotRegistered",
            Error::NotExposed { .. } => "NotExposed",
            Error::InvalidState(_) => "InvalidState",
            Error::MessageTooLarge { .. } => "MessageTooLarge",
            Error::Codec(_) => "Codec",
            Error::Io(_) => "Io",
        }
    }

    /// Shorthand for [`Error::InvalidState`].
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::InvalidState(msg.into())
    }

    /// The last OS error as [`Error::Io`].
    pub(crate) fn last_os() -> Self {
        Error::Io(std::io::Error::last_os_error())
    }
}

impl From<rustix::io::Errno> for Error {
    fn from(e: rustix::io::Errno) -> Self {
        Error::Io(e.into())
    }
}

impl From<postcard::Error> for Error {
    fn from(e: postcard::Error) -> Self {
        Error::Codec(e.to_string())
    }
}
