//! Small pieces that most drivers need and that are the same everywhere:
//! a wall clock in milliseconds, the "disconnected" guard shared by a root
//! handle and its namespaces, and a periodic background task (e.g. pruning
//! expired entries) that runs on the plugin runtime and stops on
//! disconnect or when the driver is dropped.
//!
//! It also checks numeric options that must be positive, with the same
//! message everywhere, and says where a driver keeps its locks when they
//! share the entries' key space ([`lock_key`]).
//!
//! Not for anything backend-specific: connection pools, timeouts of a
//! particular client and SQL stay in the drivers.

use crate::{DriverError, DriverResult, PluginRuntime};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};
use tokio::task::AbortHandle;

/// Refuse any of `options` (name, value) that is zero, with an
/// `InvalidOptions` error naming the first offending option:
/// ``invalid option `pool_size`: must be at least 1``.
///
/// ```
/// use bento_plugin_api::toolkit::require_at_least_one;
/// assert!(require_at_least_one(&[("pool_size", 4), ("timeout_ms", 500)]).is_ok());
/// let error = require_at_least_one(&[("pool_size", 4), ("timeout_ms", 0)]).unwrap_err();
/// assert!(error.message.contains("`timeout_ms`"));
/// ```
pub fn require_at_least_one(options: &[(&str, u64)]) -> DriverResult<()> {
    match options.iter().find(|(_, value)| *value == 0) {
        Some((name, _)) => Err(DriverError::invalid_options(format!("invalid option `{name}`: must be at least 1"))),
        None => Ok(()),
    }
}

/// Where a driver that keeps locks in its key space stores the lock named
/// by `stored_key` (the `prefix:key` of [`crate::Prefix::key`]): the bytes
/// `0xFF "lock:"` followed by the stored key. `0xFF` never occurs in UTF-8,
/// so no entry key (always UTF-8) can equal a lock key, and no prefix
/// pattern of a `clear()` (`prefix:*`, `LIKE 'prefix:%'`, a key range) can
/// match one.
///
/// ```
/// use bento_plugin_api::toolkit::lock_key;
/// assert_eq!(lock_key("app:user:1"), b"\xfflock:app:user:1");
/// ```
pub fn lock_key(stored_key: &str) -> Vec<u8> {
    const MARKER: &[u8] = b"\xfflock:";
    let mut key = Vec::with_capacity(MARKER.len() + stored_key.len());
    key.extend_from_slice(MARKER);
    key.extend_from_slice(stored_key.as_bytes());
    key
}

/// Milliseconds since the Unix epoch (0 if the clock is set before it).
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Whether a driver's shared state (one per root handle, shared by its
/// namespaces) has been disconnected, and the background task to stop when
/// it is. Dropping it stops the task too.
#[derive(Debug, Default)]
pub struct Lifecycle {
    disconnected: AtomicBool,
    task: Mutex<Option<AbortHandle>>,
}

impl Lifecycle {
    /// A connected lifecycle without a background task.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether [`Lifecycle::disconnect`] has been called.
    pub fn is_disconnected(&self) -> bool {
        self.disconnected.load(Ordering::Acquire)
    }

    /// `Err(DriverError::disconnected())` once disconnected, for operations
    /// to fail fast with.
    pub fn ensure_connected(&self) -> DriverResult<()> {
        if self.is_disconnected() {
            return Err(DriverError::disconnected());
        }
        Ok(())
    }

    /// Marks the state disconnected and stops the background task. Returns
    /// `true` the first time only, so the caller closes its backend once.
    pub fn disconnect(&self) -> bool {
        let first = !self.disconnected.swap(true, Ordering::AcqRel);
        self.stop_task();
        first
    }

    fn stop_task(&self) {
        let task = self.task.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
        if let Some(task) = task {
            task.abort();
        }
    }
}

impl Drop for Lifecycle {
    fn drop(&mut self) {
        self.stop_task();
    }
}

/// Runs `work(shared)` every `interval` (first after one interval) on the
/// plugin runtime, as the background task of `shared`'s [`Lifecycle`]. The
/// task holds `shared` only weakly while it waits, so it ends when the
/// driver is dropped, and it ends on disconnect. A tick that comes while
/// `work` is still running is delayed, not bunched up; `work` reports its
/// own errors (a failed prune is simply retried at the next tick).
pub fn spawn_periodic<S, F, Fut>(shared: &Arc<S>, interval: Duration, work: F) -> DriverResult<()>
where
    S: AsRef<Lifecycle> + Send + Sync + 'static,
    F: Fn(Arc<S>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let weak: Weak<S> = Arc::downgrade(shared);
    let task = PluginRuntime::handle()?.spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            let Some(shared) = weak.upgrade() else { return };
            if (*shared).as_ref().is_disconnected() {
                return;
            }
            work(shared).await;
        }
    });
    let lifecycle = (**shared).as_ref();
    *lifecycle.task.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(task.abort_handle());
    Ok(())
}

/// Parse a byte size such as `"64mb"`, `"512 KiB"`, `"1.5gb"` or `"4096"`
/// (bytes). `kb`/`kib`, `mb`/`mib`, `gb`/`gib`, `tb`/`tib` are all binary
/// multiples (1024), case-insensitive, as BentoCache reads sizes.
///
/// ```
/// use bento_plugin_api::toolkit::parse_size;
/// assert_eq!(parse_size("64mb"), Ok(64 * 1024 * 1024));
/// assert_eq!(parse_size("512 KiB"), Ok(512 * 1024));
/// assert_eq!(parse_size("100"), Ok(100));
/// assert!(parse_size("lots").is_err());
/// ```
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 =
        number.parse().map_err(|_| format!("invalid size `{text}` (write it like \"64mb\" or \"512kb\")"))?;
    let multiple: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => return Err(format!("invalid size `{text}` (use b, kb, mb, gb or tb)")),
    };
    let bytes = (number * multiple as f64).ceil();
    if !bytes.is_finite() || bytes > u64::MAX as f64 {
        return Err(format!("invalid size `{text}`: out of range"));
    }
    Ok(bytes as u64)
}

/// Deserialize an optional byte-size option from a number of bytes or a
/// string like `"64mb"` ([`parse_size`]). Pair it with [`HumanSize`] for
/// the schema:
///
/// ```
/// #[derive(serde::Deserialize, schemars::JsonSchema)]
/// struct Options {
///     /// Maximum total size. Default: unbounded.
///     #[serde(default, deserialize_with = "bento_plugin_api::toolkit::optional_size")]
///     #[schemars(with = "Option<bento_plugin_api::toolkit::HumanSize>")]
///     max_size: Option<u64>,
/// }
/// let options: Options = serde_json::from_str(r#"{"max_size":"1kb"}"#).unwrap();
/// assert_eq!(options.max_size, Some(1024));
/// ```
pub fn optional_size<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    struct SizeVisitor;

    impl serde::de::Visitor<'_> for SizeVisitor {
        type Value = Option<u64>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a size like \"64mb\" or a number of bytes")
        }

        fn visit_u64<E: serde::de::Error>(self, bytes: u64) -> Result<Self::Value, E> {
            Ok(Some(bytes))
        }

        fn visit_i64<E: serde::de::Error>(self, bytes: i64) -> Result<Self::Value, E> {
            u64::try_from(bytes).map(Some).map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(bytes), &self))
        }

        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Self::Value, E> {
            parse_size(text).map(Some).map_err(E::custom)
        }

        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }

    deserializer.deserialize_any(SizeVisitor)
}

/// The JSON Schema of a size option read by [`optional_size`]: a number of
/// bytes or a string like `"64mb"`.
#[derive(schemars::JsonSchema)]
#[schemars(untagged)]
pub enum HumanSize {
    /// A number of bytes.
    Bytes(u64),
    /// A size like `"64mb"` or `"512kb"`.
    Text(String),
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1kb"), Ok(1024));
        assert_eq!(parse_size("1.5 GB"), Ok(3 << 29));
        assert_eq!(parse_size("10b"), Ok(10));
        assert_eq!(parse_size("2TiB"), Ok(2 << 40));
        assert!(parse_size("-1mb").is_err());
        assert!(parse_size("9mb of ram").unwrap_err().contains("9mb of ram"));
    }
}
