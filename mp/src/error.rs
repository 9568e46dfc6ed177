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
    ///
    /// The field is a [`CodecError`]: the message (it derefs to `str`, so
    /// `Error::Codec(msg) if msg.contains("…")` reads as with a `String`) and, when the
    /// codec reported one, the codec's own error, returned by
    /// [`source()`](std::error::Error::source) of the `Error`.
    #[error("codec error: {0}")]
    Codec(#[source] CodecError),
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
        Error::Codec(CodecError::from_error(e))
    }
}

/// What an [`Error::Codec`] carries: a message, and the codec's error as its cause when
/// there is one.
///
/// API.md's table writes the variant `Codec(String)`; it keeps that shape for every use
/// but one: the field is this type, so the codec's typed error survives as the
/// `source()` instead of being flattened into the message. It derefs to the message
/// (`&str`), compares equal to strings, displays as the message, and converts from and
/// into `String` (`Error::Codec(msg.into())` builds one).
///
/// ```
/// use std::error::Error as _;
/// let e = mp::codec::decode::<Vec<u64>>(&[0xff]).unwrap_err();
/// match &e {
///     mp::Error::Codec(msg) => assert!(!msg.is_empty()),
///     other => panic!("{other:?}"),
/// }
/// // the codec's own error is kept
/// assert!(e.source().and_then(|s| s.source()).is_some());
/// let built = mp::Error::Codec("bad item".into());
/// assert!(matches!(&built, mp::Error::Codec(m) if m == "bad item"));
/// ```
#[derive(Clone)]
pub struct CodecError {
    message: String,
    cause: Option<std::sync::Arc<dyn std::error::Error + Send + Sync + 'static>>,
}

impl CodecError {
    /// A codec error with a message and no underlying cause.
    pub fn new(message: impl Into<String>) -> Self {
        CodecError {
            message: message.into(),
            cause: None,
        }
    }

    /// A codec error caused by `e` (its message is `e`'s).
    pub fn from_error(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        CodecError {
            message: e.to_string(),
            cause: Some(std::sync::Arc::new(e)),
        }
    }

    /// `message`, caused by `e`.
    pub fn with_cause(
        message: impl Into<String>,
        e: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        CodecError {
            message: message.into(),
            cause: Some(std::sync::Arc::new(e)),
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Debug for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.message, f)
    }
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CodecError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl std::ops::Deref for CodecError {
    type Target = str;
    fn deref(&self) -> &str {
        &self.message
    }
}

impl AsRef<str> for CodecError {
    fn as_ref(&self) -> &str {
        &self.message
    }
}

impl From<String> for CodecError {
    fn from(message: String) -> Self {
        CodecError::new(message)
    }
}

impl From<&str> for CodecError {
    fn from(message: &str) -> Self {
        CodecError::new(message)
    }
}

impl From<CodecError> for String {
    fn from(e: CodecError) -> String {
        e.message
    }
}

impl PartialEq<str> for CodecError {
    fn eq(&self, other: &str) -> bool {
        self.message == other
    }
}

impl PartialEq<&str> for CodecError {
    fn eq(&self, other: &&str) -> bool {
        self.message == *other
    }
}

impl PartialEq<String> for CodecError {
    fn eq(&self, other: &String) -> bool {
        &self.message == other
    }
}
