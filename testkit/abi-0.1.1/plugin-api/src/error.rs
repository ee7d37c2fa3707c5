//! The error every driver and bus operation returns, on both sides of the
//! boundary. Its stable twin is [`crate::abi::FfiError`].

use abi_stable::StableAbi;
use std::fmt;

/// What went wrong, as an open set: a newer plugin may report a kind this
/// host does not know; it is then displayed as `unknown(N)` and treated like
/// [`ErrorKind::BACKEND`].
#[repr(transparent)]
#[derive(StableAbi, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErrorKind(pub u32);

impl ErrorKind {
    /// The backend could not be reached or the connection broke.
    pub const CONNECTION: ErrorKind = ErrorKind(1);
    /// The backend did not answer within the configured timeout.
    pub const TIMEOUT: ErrorKind = ErrorKind(2);
    /// The options JSON was malformed, had an unknown field or a wrong type.
    pub const INVALID_OPTIONS: ErrorKind = ErrorKind(3);
    /// The driver cannot store this key (never truncated, never collided).
    pub const INVALID_KEY: ErrorKind = ErrorKind(4);
    /// The driver was disconnected; create a new one.
    pub const DISCONNECTED: ErrorKind = ErrorKind(5);
    /// The backend answered with an error.
    pub const BACKEND: ErrorKind = ErrorKind(6);
    /// The plugin code panicked; the panic was caught at the boundary.
    pub const PANICKED: ErrorKind = ErrorKind(7);
    /// The plugin does not provide this operation.
    pub const UNSUPPORTED: ErrorKind = ErrorKind(8);

    /// A stable lower-case name, e.g. `"timeout"`.
    pub fn name(self) -> &'static str {
        match self.0 {
            1 => "connection",
            2 => "timeout",
            3 => "invalid_options",
            4 => "invalid_key",
            5 => "disconnected",
            6 => "backend",
            7 => "panicked",
            8 => "unsupported",
            _ => "unknown",
        }
    }
}

impl fmt::Debug for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            "unknown" => write!(f, "unknown({})", self.0),
            name => f.write_str(name),
        }
    }
}

/// A driver or bus failure: a [`ErrorKind`] and a human-readable message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} error: {message}")]
pub struct DriverError {
    /// What kind of failure this is; callers branch on it.
    pub kind: ErrorKind,
    /// What happened, for people.
    pub message: String,
}

/// Result alias used throughout the authoring layer.
pub type DriverResult<T> = Result<T, DriverError>;

impl DriverError {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        DriverError { kind, message: message.into() }
    }
    /// [`ErrorKind::CONNECTION`].
    pub fn connection(message: impl fmt::Display) -> Self {
        Self::new(ErrorKind::CONNECTION, message.to_string())
    }
    /// [`ErrorKind::TIMEOUT`].
    pub fn timeout(message: impl fmt::Display) -> Self {
        Self::new(ErrorKind::TIMEOUT, message.to_string())
    }
    /// [`ErrorKind::INVALID_OPTIONS`].
    pub fn invalid_options(message: impl fmt::Display) -> Self {
        Self::new(ErrorKind::INVALID_OPTIONS, message.to_string())
    }
    /// [`ErrorKind::INVALID_KEY`].
    pub fn invalid_key(message: impl fmt::Display) -> Self {
        Self::new(ErrorKind::INVALID_KEY, message.to_string())
    }
    /// [`ErrorKind::DISCONNECTED`] with the standard message.
    pub fn disconnected() -> Self {
        Self::new(ErrorKind::DISCONNECTED, "the driver was disconnected")
    }
    /// [`ErrorKind::BACKEND`].
    pub fn backend(message: impl fmt::Display) -> Self {
        Self::new(ErrorKind::BACKEND, message.to_string())
    }
    /// [`ErrorKind::UNSUPPORTED`].
    pub fn unsupported(message: impl fmt::Display) -> Self {
        Self::new(ErrorKind::UNSUPPORTED, message.to_string())
    }
    /// [`ErrorKind::PANICKED`], built from a caught panic payload.
    pub fn from_panic(payload: Box<dyn std::any::Any + Send>) -> Self {
        let text = if let Some(s) = payload.downcast_ref::<&str>() {
            (*s).to_string()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "non-string panic payload".to_string()
        };
        Self::new(ErrorKind::PANICKED, format!("plugin panicked: {text}"))
    }
}
