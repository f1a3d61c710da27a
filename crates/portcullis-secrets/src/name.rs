use crate::SecretError;

/// Longest allowed alias name, in characters (all allowed characters are ASCII).
const MAX_ALIAS_LEN: usize = 128;

/// Checks an alias name: 1–128 characters of `[A-Za-z0-9._-]`, not starting
/// with `.`; e.g. `cluster.cookie-key`, `webhdfs.password`.
///
/// The narrow alphabet keeps names safe to use as file names and etcd keys
/// without escaping; a leading `.` is refused so a name can never be `.`,
/// `..` or a hidden file in a directory store.
pub fn validate_alias_name(name: &str) -> Result<(), SecretError> {
    let bad = |reason: String| SecretError::BadAliasName {
        name: name.to_string(),
        reason,
    };
    if name.is_empty() {
        return Err(bad("it is empty".to_string()));
    }
    if let Some((pos, c)) = name
        .chars()
        .enumerate()
        .find(|&(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(bad(format!(
            "character {c:?} at position {pos} is not allowed \
             (use letters, digits, '.', '_' and '-')"
        )));
    }
    // After the alphabet check every character is one byte, so len() counts characters.
    if name.len() > MAX_ALIAS_LEN {
        return Err(bad(format!(
            "it is {} characters long; the limit is {MAX_ALIAS_LEN}",
            name.len()
        )));
    }
    if name.starts_with('.') {
        return Err(bad("it must not start with '.'".to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_names() {
        let longest = "a".repeat(MAX_ALIAS_LEN);
        for name in [
            "cluster.cookie-key",
            "admin.token",
            "webhdfs.password",
            "A",
            "0",
            "_x",
            "-x",
            "a..b",
            "trailing.",
            longest.as_str(),
        ] {
            validate_alias_name(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn rejects_invalid_names_with_reason() {
        let too_long = "a".repeat(MAX_ALIAS_LEN + 1);
        for (name, expect) in [
            ("", "empty"),
            (".hidden", "start with '.'"),
            (".", "start with '.'"),
            ("..", "start with '.'"),
            ("a/b", "'/'"),
            ("a b", "' '"),
            ("caf\u{e9}", "'\u{e9}'"),
            ("new\nline", "'\\n'"),
            (too_long.as_str(), "limit is 128"),
        ] {
            let err = validate_alias_name(name).unwrap_err();
            assert!(matches!(err, SecretError::BadAliasName { .. }), "{err:?}");
            let msg = err.to_string();
            assert!(msg.contains(expect), "{name:?}: {msg}");
            assert!(msg.contains("invalid alias name"), "{msg}");
        }
    }
}
