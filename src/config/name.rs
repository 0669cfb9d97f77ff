//! OpenFaaS function names: the only names that may reach URLs, file names,
//! k6 metric names and remote shells.

use std::fmt;

/// Longest name accepted (a DNS label, as Kubernetes requires of OpenFaaS
/// function names).
const MAX_LEN: usize = 63;

/// A validated OpenFaaS function name: lowercase ASCII letters, digits,
/// `-` and `.`, starting and ending with a letter or digit, at most 63
/// characters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FunctionName(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("function name must not be empty")]
    Empty,
    #[error("function name {0:?} is longer than {MAX_LEN} characters")]
    TooLong(String),
    #[error(
        "function name {0:?} is not a valid OpenFaaS name: use lowercase letters, digits, '-' and '.', starting and ending with a letter or digit"
    )]
    Invalid(String),
}

impl FunctionName {
    pub fn parse(raw: &str) -> Result<Self, NameError> {
        if raw.is_empty() {
            return Err(NameError::Empty);
        }
        if raw.len() > MAX_LEN {
            return Err(NameError::TooLong(raw.to_string()));
        }
        let allowed =
            |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.';
        let edge = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
        let first_ok = raw.chars().next().is_some_and(edge);
        let last_ok = raw.chars().last().is_some_and(edge);
        if !first_ok || !last_ok || !raw.chars().all(allowed) {
            return Err(NameError::Invalid(raw.to_string()));
        }
        Ok(FunctionName(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FunctionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for FunctionName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A value that becomes one directory name on the k6 host and in local
/// file names (run ids, host names): 1-128 characters of `[A-Za-z0-9._-]`,
/// and neither `.` nor `..`.
pub fn is_path_segment(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 128
        && value != "."
        && value != ".."
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_openfaas_names() {
        for ok in [
            "figlet", "env", "nodeinfo", "shasum", "cows-2", "a.b-c", "x", "9lives",
        ] {
            assert_eq!(
                FunctionName::parse(ok).map(|n| n.to_string()),
                Ok(ok.to_string())
            );
        }
    }

    #[test]
    fn rejects_names_that_could_escape() {
        for bad in [
            "",
            "a;rm -rf ~",
            "../x",
            "Figlet",
            "-x",
            "x-",
            ".x",
            "a b",
            "a/b",
            "a$(id)",
            "a\nb",
            "ä",
            "a'b",
            "a\"b",
            "a`b`",
        ] {
            assert!(FunctionName::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(FunctionName::parse(&"a".repeat(64)).is_err());
    }

    #[test]
    fn path_segments() {
        for ok in ["run-1", "node1", "a.b_c-D", &"x".repeat(128)] {
            assert!(is_path_segment(ok), "{ok:?} refused");
        }
        for bad in ["", ".", "..", "a/b", "a b", "$(id)", "ä", &"x".repeat(129)] {
            assert!(!is_path_segment(bad), "{bad:?} accepted");
        }
    }
}
