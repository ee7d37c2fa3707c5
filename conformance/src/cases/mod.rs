//! The cases: named async checks against a driver, grouped by topic.
//!
//! * `bentocache`: the cases of BentoCache's `registerCacheDriverTestSuite`;
//! * `namespaces`: every method through a namespace, the empty namespace;
//! * `prefixes`: hostile prefixes, exact-prefix clear, the empty prefix;
//! * `keys_values`: hostile keys, empty / binary / large values;
//! * `ttl`: TTL precision, `has` vs `get`, expired entries, prune;
//! * `concurrency`: atomic pull, mixed concurrent operations;
//! * `batch`: `get_many` / `set_many` / `delete_many`;
//! * `lifecycle`: disconnect;
//! * `abi`: metadata and option validation;
//! * `lock`: the optional distributed lock (`Capabilities::LOCK`).

mod abi;
mod batch;
mod bentocache;
mod concurrency;
mod keys_values;
mod lifecycle;
pub(crate) mod lock;
mod namespaces;
mod prefixes;
mod ttl;

use crate::runner::Source;
use bento::{Driver, DriverError, DriverOptions, Plugin};
use futures::future::BoxFuture;
use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Why a case failed, for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Failure(String);

impl Failure {
    /// A failure with `message`.
    pub fn new(message: impl Into<String>) -> Self {
        Failure(message.into())
    }
}

impl From<DriverError> for Failure {
    fn from(error: DriverError) -> Self {
        Failure(format!("unexpected driver error: {error}"))
    }
}

impl From<bento::Error> for Failure {
    fn from(error: bento::Error) -> Self {
        Failure(format!("unexpected error: {error}"))
    }
}

/// What a case returns.
pub type CaseResult = Result<(), Failure>;

/// Names the operation in the failure when a driver call errs.
pub(crate) trait Op<T> {
    /// Turn an error into a failure naming `what` was being done.
    fn op(self, what: impl fmt::Display) -> Result<T, Failure>;
}

impl<T> Op<T> for Result<T, DriverError> {
    fn op(self, what: impl fmt::Display) -> Result<T, Failure> {
        self.map_err(|error| Failure(format!("{what} failed: {error}")))
    }
}

impl<T> Op<T> for Result<T, bento::Error> {
    fn op(self, what: impl fmt::Display) -> Result<T, Failure> {
        self.map_err(|error| Failure(format!("{what} failed: {error}")))
    }
}

/// Fail the case with a formatted message unless `cond` holds.
macro_rules! ensure {
    ($cond:expr, $($message:tt)+) => {
        if !$cond {
            return Err($crate::cases::Failure::new(format!($($message)+)));
        }
    };
}

/// Fail the case unless `actual == expected`, showing both readably.
macro_rules! ensure_eq {
    ($actual:expr, $expected:expr, $($message:tt)+) => {{
        let actual = $actual;
        let expected = $expected;
        if actual != expected {
            return Err($crate::cases::Failure::new(format!(
                "{}: expected {}, got {}",
                format!($($message)+),
                $crate::cases::Show::show(&expected),
                $crate::cases::Show::show(&actual)
            )));
        }
    }};
}

pub(crate) use {ensure, ensure_eq};

/// Readable rendering of the values cases compare.
pub(crate) trait Show {
    fn show(&self) -> String;
}

pub(crate) fn show_bytes(bytes: &[u8]) -> String {
    const LIMIT: usize = 48;
    if bytes.len() > LIMIT {
        return format!("{} bytes starting {}…", bytes.len(), show_bytes(&bytes[..16]));
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => format!("{text:?}"),
        Err(_) => format!("bytes {bytes:02x?}"),
    }
}

impl Show for Vec<u8> {
    fn show(&self) -> String {
        show_bytes(self)
    }
}

impl<T: Show> Show for Option<T> {
    fn show(&self) -> String {
        match self {
            Some(value) => format!("Some({})", value.show()),
            None => "None".to_string(),
        }
    }
}

impl<T: Show> Show for Vec<T> {
    fn show(&self) -> String {
        let items: Vec<String> = self.iter().map(Show::show).collect();
        format!("[{}]", items.join(", "))
    }
}

macro_rules! show_debug {
    ($($t:ty),*) => { $(impl Show for $t { fn show(&self) -> String { format!("{self:?}") } })* };
}
show_debug!(bool, u64, usize, String, &str, bento::ErrorKind);

/// What a case needs from the runner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    /// A root driver on the case's own unique prefix (most cases).
    Prefixed,
    /// A root driver on the EMPTY prefix, owning the whole keyspace; runs
    /// only when allowed, and never alongside other cases.
    EmptyPrefix,
    /// No driver: the case creates what it needs.
    NoDriver,
    /// No driver, and a plugin file: the case checks the plugin ABI
    /// (metadata, option validation). Skipped with a note for a native
    /// target ([`crate::Target::native`]), which has no plugin file.
    PluginAbi,
    /// Like `Prefixed`, for a driver declaring `Capabilities::LOCK`;
    /// skipped with a note otherwise.
    Lock,
    /// Like `Lock`, and two driver instances must share storage.
    LockAcrossInstances,
}

/// The signature of a case body.
pub type CaseFn = fn(Arc<CaseContext>) -> BoxFuture<'static, CaseResult>;

/// One named case of the suite.
#[derive(Clone, Copy)]
pub struct Case {
    /// Unique snake_case name, e.g. `get_returns_set_value`.
    pub name: &'static str,
    /// One sentence saying what it checks.
    pub description: &'static str,
    /// What it needs from the runner.
    pub requirement: Requirement,
    /// The body.
    pub run: CaseFn,
}

impl fmt::Debug for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Case").field("name", &self.name).field("requirement", &self.requirement).finish()
    }
}

/// Declare a [`Case`] from an `async fn(Arc<CaseContext>) -> CaseResult`.
macro_rules! case {
    ($function:ident, $requirement:ident, $description:literal) => {
        $crate::cases::Case {
            name: stringify!($function),
            description: $description,
            requirement: $crate::cases::Requirement::$requirement,
            run: |context| Box::pin($function(context)),
        }
    };
}
pub(crate) use case;

/// What a case works with: the plugin (or native driver), the options, its
/// own prefix and root driver.
pub struct CaseContext {
    source: Source,
    options_json: String,
    prefix: String,
    timeout: Duration,
    root: OnceLock<Driver>,
}

impl CaseContext {
    pub(crate) fn new(source: Source, options_json: String, prefix: String, timeout: Duration) -> Self {
        CaseContext { source, options_json, prefix, timeout, root: OnceLock::new() }
    }

    /// The plugin under test; `None` for a native target
    /// ([`crate::Target::native`]).
    pub fn plugin(&self) -> Option<&Plugin> {
        self.source.plugin()
    }

    /// The plugin under test, or a failure for a native target (cases with
    /// [`Requirement::PluginAbi`] are not run on one).
    pub(crate) fn require_plugin(&self) -> Result<&Plugin, Failure> {
        self.plugin().ok_or_else(|| Failure::new("this case needs a plugin file; the target is a native driver"))
    }

    /// The driver options JSON of the target (not used by a native one).
    pub fn options_json(&self) -> &str {
        &self.options_json
    }

    /// This case's prefix (`""` for empty-prefix cases).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The case's timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub(crate) async fn connect_root(&self) -> CaseResult {
        let driver = self.create_driver(DriverOptions::with_prefix(self.prefix.clone())).await?;
        let _ = self.root.set(driver);
        Ok(())
    }

    pub(crate) fn root_if_connected(&self) -> Option<&Driver> {
        self.root.get()
    }

    /// The case's root driver, on [`CaseContext::prefix`].
    pub fn driver(&self) -> &Driver {
        self.root.get().expect("the runner connects the root driver before running a case that needs one")
    }

    /// A new driver instance with the target's options and `options`.
    pub async fn create_driver(&self, options: DriverOptions) -> Result<Driver, Failure> {
        let prefix = options.prefix.clone();
        self.source.create_driver(options).await.op(format_args!("creating a driver with prefix {prefix:?}"))
    }
}

/// Every case, in run order.
pub fn all_cases() -> &'static [Case] {
    static CASES: OnceLock<Vec<Case>> = OnceLock::new();
    CASES.get_or_init(|| {
        let mut cases = Vec::new();
        cases.extend(abi::cases());
        cases.extend(bentocache::cases());
        cases.extend(namespaces::cases());
        cases.extend(prefixes::cases());
        cases.extend(keys_values::cases());
        cases.extend(ttl::cases());
        cases.extend(batch::cases());
        cases.extend(concurrency::cases());
        cases.extend(lifecycle::cases());
        cases.extend(lock::cases());
        cases
    })
}

/// `value` as owned bytes.
pub(crate) fn v(value: &str) -> Vec<u8> {
    value.as_bytes().to_vec()
}

/// Fail unless `driver.get(key)` returns `expected`.
pub(crate) async fn expect_get(driver: &Driver, key: &str, expected: Option<&[u8]>, why: &str) -> CaseResult {
    let actual = driver.get(key).await.op(format_args!("get({key:?})"))?;
    ensure_eq!(actual, expected.map(<[u8]>::to_vec), "get({key:?}) {why}");
    Ok(())
}

/// Sleep on the suite's runtime.
pub(crate) async fn sleep_ms(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_names_are_unique() {
        let mut names: Vec<&str> = all_cases().iter().map(|case| case.name).collect();
        let count = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), count);
    }

    #[test]
    fn bytes_are_shown_readably() {
        assert_eq!(Some(v("abc")).show(), "Some(\"abc\")");
        assert_eq!(vec![0xffu8, 0].show(), "bytes [ff, 00]");
        assert!(vec![b'x'; 100].show().starts_with("100 bytes"));
    }
}
