//! [`TypedCache`]: a [`Cache`] handle whose value type is fixed once, so a
//! key cannot be read as one type here and written as another there by
//! accident. Every verb is the untyped one with `T` filled in.

use crate::cache::{Cache, CacheValue};
use crate::error::Error;
use crate::get_or_set::Factory;
use crate::ops::{Get, GetOrSet, Set};
use std::marker::PhantomData;

/// A cache handle for values of type `T`. Cheap to clone.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), bento::Error> {
/// #[derive(Clone, serde::Serialize, serde::Deserialize)]
/// struct User {
///     name: String,
/// }
///
/// let bento = bento::Bento::builder().build().await?;
/// let users = bento.typed::<User>().namespace("users")?;
/// let ada = users.get_or_set("1", |_ctx| async { Ok::<_, bento::BoxError>(User { name: "Ada".into() }) }).await?;
/// assert_eq!(users.get("1").await?.map(|user| user.name), Some(ada.name));
/// # Ok(()) }
/// ```
pub struct TypedCache<T> {
    cache: Cache,
    value: PhantomData<fn() -> T>,
}

impl<T> Clone for TypedCache<T> {
    fn clone(&self) -> Self {
        TypedCache { cache: self.cache.clone(), value: PhantomData }
    }
}

impl<T> std::fmt::Debug for TypedCache<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypedCache").field("cache", &self.cache).field("type", &std::any::type_name::<T>()).finish()
    }
}

impl Cache {
    /// This handle with its value type fixed to `T`.
    pub fn typed<T: CacheValue>(&self) -> TypedCache<T> {
        TypedCache { cache: self.clone(), value: PhantomData }
    }
}

impl<T: CacheValue> TypedCache<T> {
    /// The untyped handle underneath (for keys holding other types, tags,
    /// `clear`, …).
    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// A typed handle on the nested namespace `name`.
    pub fn namespace(&self, name: &str) -> Result<TypedCache<T>, Error> {
        Ok(self.cache.namespace(name)?.typed())
    }

    /// [`Cache::get`].
    pub fn get<'a>(&'a self, key: &'a str) -> Get<'a, T> {
        self.cache.get(key)
    }

    /// [`Cache::get_or_set`].
    pub fn get_or_set<'a, F: Factory<T>>(&'a self, key: &'a str, factory: F) -> GetOrSet<'a, T, F> {
        self.cache.get_or_set(key, factory)
    }

    /// [`Cache::get_or_set_forever`].
    pub fn get_or_set_forever<'a, F: Factory<T>>(&'a self, key: &'a str, factory: F) -> GetOrSet<'a, T, F> {
        self.cache.get_or_set_forever(key, factory)
    }

    /// [`Cache::set`].
    pub fn set<'a>(&'a self, key: &'a str, value: T) -> Set<'a, T> {
        self.cache.set(key, value)
    }

    /// [`Cache::set_forever`].
    pub fn set_forever<'a>(&'a self, key: &'a str, value: T) -> Set<'a, T> {
        self.cache.set_forever(key, value)
    }

    /// [`Cache::get_many`].
    pub async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<T>>, Error> {
        self.cache.get_many(keys).await
    }

    /// [`Cache::set_many`].
    pub async fn set_many(&self, items: Vec<(&str, T)>) -> Result<bool, Error> {
        self.cache.set_many(items).await
    }

    /// [`Cache::pull`].
    pub async fn pull(&self, key: &str) -> Result<Option<T>, Error> {
        self.cache.pull(key).await
    }

    /// [`Cache::has`].
    pub async fn has(&self, key: &str) -> Result<bool, Error> {
        self.cache.has(key).await
    }

    /// [`Cache::delete`].
    pub async fn delete(&self, key: &str) -> Result<bool, Error> {
        self.cache.delete(key).await
    }

    /// [`Cache::expire`].
    pub async fn expire(&self, key: &str) -> Result<bool, Error> {
        self.cache.expire(key).await
    }
}
