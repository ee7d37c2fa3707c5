//! Escaping for Redis glob patterns (`SCAN MATCH`, `KEYS`).

/// `text` with every glob metacharacter (`*`, `?`, `[`, `]`, `\`) escaped
/// by a backslash, so the pattern matches `text` literally.
///
/// ```
/// assert_eq!(bento_driver_redis::escape_glob("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
/// ```
pub fn escape_glob(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len() + 8);
    for character in text.chars() {
        if matches!(character, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(character);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::escape_glob;

    #[test]
    fn plain_text_is_unchanged() {
        assert_eq!(escape_glob("bentocache:users:"), "bentocache:users:");
        assert_eq!(escape_glob("a_b%c-^é"), "a_b%c-^é");
    }

    #[test]
    fn metacharacters_are_escaped() {
        assert_eq!(escape_glob("a*b"), "a\\*b");
        assert_eq!(escape_glob("a?b"), "a\\?b");
        assert_eq!(escape_glob("a[b]"), "a\\[b\\]");
        assert_eq!(escape_glob("a\\b"), "a\\\\b");
    }
}
