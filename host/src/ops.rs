//! Operation builders: `cache.get_or_set(key, factory).ttl(..).grace(..).await`.
//! Each builder collects per-operation [`CacheOptions`] and is awaited
//! through `IntoFuture`. `get` and `get_or_set` answer an L1 hit before
//! allocating anything ([`CacheFuture`] is then already complete).

use crate::cache::{Cache, CacheValue};
use crate::error::Error;
use crate::get_or_set::Factory;
use crate::options::CacheOptions;
use crate::read::Probe;
use futures::future::BoxFuture;
use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// The future of a cache operation: complete at once on an L1 hit,
/// otherwise the boxed slow path.
#[must_use = "futures do nothing unless awaited"]
pub struct CacheFuture<'a, T> {
    state: FutureState<'a, T>,
}

/// The ready state holds the bare value (an L1 hit never fails), so the
/// future a hit returns stays a few words wide: moving an 80-byte
/// `Result<T, Error>` through it measurably slowed the hit path.
enum FutureState<'a, T> {
    Ready(Option<T>),
    Pending(BoxFuture<'a, Result<T, Error>>),
}

impl<'a, T> CacheFuture<'a, T> {
    pub(crate) fn ready(value: T) -> Self {
        CacheFuture { state: FutureState::Ready(Some(value)) }
    }

    pub(crate) fn pending(future: impl Future<Output = Result<T, Error>> + Send + 'a) -> Self {
        CacheFuture { state: FutureState::Pending(Box::pin(future)) }
    }
}

// The value is moved out, never pinned in place.
impl<T> Unpin for CacheFuture<'_, T> {}

impl<T> Future for CacheFuture<'_, T> {
    type Output = Result<T, Error>;

    fn poll(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.get_mut().state {
            FutureState::Ready(value) => Poll::Ready(Ok(value.take().expect("CacheFuture polled after completion"))),
            FutureState::Pending(future) => future.as_mut().poll(context),
        }
    }
}

macro_rules! option_setters {
    () => {
        /// Logical TTL of the value.
        pub fn ttl(self, ttl: Duration) -> Self {
            self.with_options(|options| options.ttl(ttl))
        }

        /// The value never expires logically.
        pub fn forever(self) -> Self {
            self.with_options(|options| options.forever())
        }

        /// Enable grace for this long.
        pub fn grace(self, grace: Duration) -> Self {
            self.with_options(|options| options.grace(grace))
        }

        /// Disable grace.
        pub fn no_grace(self) -> Self {
            self.with_options(|options| options.no_grace())
        }

        /// Grace backoff after a failed refresh.
        pub fn grace_backoff(self, backoff: Duration) -> Self {
            self.with_options(|options| options.grace_backoff(backoff))
        }

        /// Skip the L2 write.
        pub fn skip_l2_write(self) -> Self {
            self.with_options(|options| options.skip_l2_write(true))
        }

        /// Skip the bus notification.
        pub fn skip_bus_notify(self) -> Self {
            self.with_options(|options| options.skip_bus_notify(true))
        }

        /// Time limit of each L2 call of this operation.
        pub fn l2_timeout(self, timeout: Duration) -> Self {
            self.with_options(|options| options.l2_timeout(timeout))
        }

        /// Fail (instead of missing) when the value does not decode as `T`.
        pub fn strict_decoding(self, strict: bool) -> Self {
            self.with_options(|options| options.strict_decoding(strict))
        }

        /// Whether L2 errors are logged and ignored.
        pub fn suppress_l2_errors(self, suppress: bool) -> Self {
            self.with_options(|options| options.suppress_l2_errors(suppress))
        }

        /// Layer a whole option set over what was set so far.
        pub fn options(self, layered: CacheOptions) -> Self {
            self.with_options(|options| layered.over(&options))
        }

        // Options are boxed and created on first use, so that a builder
        // without options (the L1 hit path) stays a few words wide.
        fn with_options(mut self, change: impl FnOnce(CacheOptions) -> CacheOptions) -> Self {
            let current = self.options.take().map(|options| *options).unwrap_or_default();
            self.options = Some(Box::new(change(current)));
            self
        }
    };
}

/// `cache.get(key)`: the value (fresh, or graced when grace is enabled).
#[must_use = "awaiting it runs the operation"]
pub struct Get<'a, T> {
    pub(crate) cache: &'a Cache,
    pub(crate) key: &'a str,
    pub(crate) options: Option<Box<CacheOptions>>,
    pub(crate) value: PhantomData<fn() -> T>,
}

impl<T> Get<'_, T> {
    option_setters!();
}

impl<'a, T: CacheValue> IntoFuture for Get<'a, T> {
    type Output = Result<Option<T>, Error>;
    type IntoFuture = CacheFuture<'a, Option<T>>;

    #[inline]
    fn into_future(self) -> Self::IntoFuture {
        let known = match self.cache.probe_l1::<T>(self.key) {
            Probe::Hit(value, _) => return CacheFuture::ready(Some(value)),
            Probe::Miss(known) => known,
        };
        self.cache.get_slow(self.key, self.options, known)
    }
}

/// `cache.get_or_set(key, factory)`.
#[must_use = "awaiting it runs the operation"]
pub struct GetOrSet<'a, T, F> {
    pub(crate) cache: &'a Cache,
    pub(crate) key: &'a str,
    pub(crate) factory: F,
    pub(crate) options: Option<Box<CacheOptions>>,
    /// Boxed, and `None` until set, like the options: a hit then neither
    /// builds nor drops a `Vec`.
    pub(crate) tags: Option<Box<[String]>>,
    pub(crate) value: PhantomData<fn() -> T>,
}

impl<T, F> GetOrSet<'_, T, F> {
    option_setters!();

    /// Soft timeout (zero = stale-while-revalidate).
    pub fn timeout(self, timeout: Duration) -> Self {
        self.with_options(|options| options.timeout(timeout))
    }

    /// Wait for the factory however long it takes, even with a graced value.
    pub fn no_timeout(self) -> Self {
        self.with_options(|options| options.no_timeout())
    }

    /// Fail with `Error::HardTimeout` after this long.
    pub fn hard_timeout(self, timeout: Duration) -> Self {
        self.with_options(|options| options.hard_timeout(timeout))
    }

    /// Refresh in the background once a hit is past this fraction of the
    /// entry's TTL (0 < fraction < 1).
    pub fn eager_refresh(self, fraction: f64) -> Self {
        self.with_options(|options| options.eager_refresh(fraction))
    }

    /// Maximum wait for another caller computing the same key.
    pub fn lock_timeout(self, timeout: Duration) -> Self {
        self.with_options(|options| options.lock_timeout(timeout))
    }

    /// Run the factory even if a fresh value exists.
    pub fn force_fresh(self) -> Self {
        self.with_options(|options| options.force_fresh(true))
    }

    /// Tags of the computed value.
    pub fn tags<I: IntoIterator<Item = S>, S: Into<String>>(mut self, tags: I) -> Self {
        self.tags = Some(tags.into_iter().map(Into::into).collect());
        self
    }
}

impl<'a, T: CacheValue, F: Factory<T>> IntoFuture for GetOrSet<'a, T, F> {
    type Output = Result<T, Error>;
    type IntoFuture = CacheFuture<'a, T>;

    #[inline]
    fn into_future(self) -> Self::IntoFuture {
        let force_fresh = self
            .options
            .as_ref()
            .and_then(|options| options.get_force_fresh())
            .unwrap_or(self.cache.settings().force_fresh);
        let eager_refresh = match &self.options {
            Some(options) => options.get_eager_refresh().or(self.cache.settings().eager_refresh),
            None => self.cache.settings().eager_refresh,
        };
        let seen = match force_fresh {
            true => None,
            false => match self.cache.probe_l1_tracked::<T>(self.key, eager_refresh) {
                Ok((value, due)) => {
                    if due {
                        let options = self.options.map(|options| *options).unwrap_or_default();
                        self.cache.refresh_in_background(self.key, self.factory, options, owned(self.tags));
                    }
                    return CacheFuture::ready(value);
                }
                Err(seen) => Some(seen),
            },
        };
        let options = self.options.map(|options| *options).unwrap_or_default();
        CacheFuture::pending(self.cache.get_or_set_slow(self.key, self.factory, options, owned(self.tags), seen))
    }
}

/// The tags a builder holds, as the pipelines take them.
fn owned(tags: Option<Box<[String]>>) -> Vec<String> {
    tags.map(Vec::from).unwrap_or_default()
}

/// `cache.set(key, value)`: true when stored.
#[must_use = "awaiting it runs the operation"]
pub struct Set<'a, T> {
    pub(crate) cache: &'a Cache,
    pub(crate) key: &'a str,
    pub(crate) value: T,
    pub(crate) options: Option<Box<CacheOptions>>,
    pub(crate) tags: Vec<String>,
}

impl<T> Set<'_, T> {
    option_setters!();

    /// Tags of the value.
    pub fn tags<I: IntoIterator<Item = S>, S: Into<String>>(mut self, tags: I) -> Self {
        self.tags = tags.into_iter().map(Into::into).collect();
        self
    }
}

impl<'a, T: CacheValue> IntoFuture for Set<'a, T> {
    type Output = Result<bool, Error>;
    type IntoFuture = CacheFuture<'a, bool>;

    fn into_future(self) -> Self::IntoFuture {
        let Set { cache, key, value, options, tags } = self;
        CacheFuture::pending(async move {
            let settings = cache.settings_with(&options.map(|options| *options).unwrap_or_default())?;
            cache.write_value(key, value, tags, &settings).await
        })
    }
}
