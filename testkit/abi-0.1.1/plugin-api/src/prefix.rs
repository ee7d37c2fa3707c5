//! Key layout shared by every driver: stored key = `prefix:key`.

/// A driver handle's key prefix, with the layout rules of the driver
/// contract:
///
/// * the stored key is `prefix:key` ([`Prefix::key`]); a trailing `:` on
///   the prefix is ignored;
/// * the empty prefix means "the whole keyspace": keys are stored as they
///   are, and `clear` empties everything ([`Prefix::is_empty`]);
/// * namespaces nest with `:` ([`Prefix::namespace`]): under `app`,
///   `namespace("users")` stores `1` as `app:users:1`, the same entry as
///   the root's key `users:1`; under the empty prefix it stores `users:1`;
/// * `namespace("")` adds no level: it is a handle on the same prefix;
/// * what `clear` removes is every stored key starting with
///   [`Prefix::scope`] (`prefix:`), an exact-prefix match: `users` never owns
///   `usersAbc` ([`Prefix::owns`]). Backends that match with patterns must
///   escape the scope (SQL `LIKE`, Redis glob).
///
/// ```
/// use bento_plugin_api::Prefix;
/// let root = Prefix::new("bentocache:");
/// assert_eq!(root.as_str(), "bentocache");
/// assert_eq!(root.key("user:1"), "bentocache:user:1");
/// assert_eq!(root.namespace("users").key("1"), root.key("users:1"));
/// assert_eq!(root.namespace(""), root);
/// assert_eq!(root.scope(), "bentocache:");
/// assert!(root.owns("bentocache:users:1") && !root.owns("bentocacheX:1"));
///
/// let whole = Prefix::new("");
/// assert_eq!(whole.key("k"), "k");
/// assert_eq!(whole.namespace("users").key("1"), "users:1");
/// assert_eq!(whole.scope(), "");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Prefix {
    value: String,
}

impl Prefix {
    /// The prefix `prefix` with trailing `:` removed.
    pub fn new(prefix: &str) -> Self {
        Prefix { value: prefix.trim_end_matches(':').to_string() }
    }

    /// The prefix without the trailing separator (`""` when empty).
    pub fn as_str(&self) -> &str {
        &self.value
    }

    /// True when this handle owns the driver's whole keyspace.
    pub fn is_empty(&self) -> bool {
        self.value.is_empty()
    }

    /// The prefix of a nested namespace: `prefix:namespace` (a trailing
    /// `:` on `namespace` is ignored); `namespace` alone under the empty
    /// prefix; this same prefix when `namespace` is empty.
    pub fn namespace(&self, namespace: &str) -> Prefix {
        let namespace = namespace.trim_end_matches(':');
        if namespace.is_empty() {
            self.clone()
        } else if self.value.is_empty() {
            Prefix::new(namespace)
        } else {
            Prefix { value: format!("{}:{namespace}", self.value) }
        }
    }

    /// The stored key for `key`.
    pub fn key(&self, key: &str) -> String {
        if self.value.is_empty() {
            key.to_string()
        } else {
            let mut full = String::with_capacity(self.value.len() + 1 + key.len());
            full.push_str(&self.value);
            full.push(':');
            full.push_str(key);
            full
        }
    }

    /// What every stored key under this prefix (nested namespaces included)
    /// starts with: `prefix:`, or `""` for the empty prefix.
    pub fn scope(&self) -> String {
        if self.value.is_empty() {
            String::new()
        } else {
            format!("{}:", self.value)
        }
    }

    /// True when `stored_key` belongs to this handle or one of its
    /// namespaces (exact-prefix match, so `users` never owns `usersAbc`).
    pub fn owns(&self, stored_key: &str) -> bool {
        self.value.is_empty()
            || (stored_key.len() > self.value.len()
                && stored_key.starts_with(self.value.as_str())
                && stored_key.as_bytes()[self.value.len()] == b':')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owns_is_exact() {
        let users = Prefix::new("users");
        assert!(users.owns("users:1"));
        assert!(users.owns("users:a:b"));
        assert!(!users.owns("usersAbc"));
        assert!(!users.owns("users"));
        assert!(Prefix::new("").owns("anything"));
    }

    #[test]
    fn empty_namespace_is_the_same_prefix() {
        assert_eq!(Prefix::new("a").namespace(""), Prefix::new("a"));
        assert_eq!(Prefix::new("a").namespace(":"), Prefix::new("a"));
        assert_eq!(Prefix::new("").namespace(""), Prefix::new(""));
    }

    #[test]
    fn nested_namespaces_join_with_colon() {
        let p = Prefix::new("a").namespace("b").namespace("c");
        assert_eq!(p.as_str(), "a:b:c");
        assert_eq!(Prefix::new("").namespace("x").key("1"), "x:1");
    }
}
