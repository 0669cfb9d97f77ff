//! OpenFaaS function names: the only names that may reach URLs, file names,
//! k6 metric names and remote shells.

use std::fmt;

/// Longest name accepted (a DNS label, as Kubernetes requires of OpenFaaS
/// function names).
const MAX_LEN: usize = 63;

/// A validated OpenFaaS function name: lowercase ASCII letters, digits,
/// `-` and `.`, starting and ending with a letter or digit, at most 63
/// characters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
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

    pub(crate) fn as_str(&self) -> &str {
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
///
/// The one rule for such names: the request's run id and host are checked
/// with it when they come in, and the k6 runner checks each segment of its
/// workspace path (`<root>/<host>/<run_id>/<config_id>`) with it again, so
/// the runner is safe on its own (benches and tests call it directly). The
/// runner still shell-quotes every value; the rule keeps a segment one
/// plain directory name, never shell syntax or a path.
pub fn is_path_segment(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 128
        && value != "."
        && value != ".."
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// What [`is_path_segment`] requires, as error messages say it.
pub const PATH_SEGMENT_RULE: &str =
    "must be 1-128 characters of [A-Za-z0-9._-], and not '.' or '..'";

/// Longest host name accepted (DNS: 253 characters).
const MAX_HOST_LEN: usize = 253;
/// Longest user name accepted.
const MAX_USER_LEN: usize = 64;
/// How much of a refused value an error quotes.
const QUOTED_CHARS: usize = 64;

/// A value for an error message: escaped (control and invisible
/// characters shown as escapes), at most [`QUOTED_CHARS`] characters.
pub(crate) fn shown(value: &str) -> String {
    let head: String = value.chars().take(QUOTED_CHARS).collect();
    if head.len() < value.len() {
        format!("{head:?}… ({} bytes)", value.len())
    } else {
        format!("{head:?}")
    }
}

/// A host ssh (and Ansible) can be pointed at: an IPv4 address, an IPv6
/// address (optionally with a `%zone`), or a DNS name — labels of 1-63
/// letters, digits, `-` and `_`, not starting or ending with `-`, joined by
/// `.`, 253 characters in all, an optional final `.`. Anything else (quotes,
/// `$`, backticks, `@`, whitespace, invisible characters) is refused: the
/// name reaches ssh's command line and the set-up playbooks' inventory.
pub(crate) fn check_host_name(value: &str) -> Result<(), String> {
    let refuse = |why: &str| {
        Err(format!(
            "{} is not a host name or IP address: {why}",
            shown(value)
        ))
    };
    if value.is_empty() {
        return Err("must not be empty".to_string());
    }
    if value.len() > MAX_HOST_LEN {
        return refuse("longer than 253 characters");
    }
    if value.parse::<std::net::Ipv4Addr>().is_ok() {
        return Ok(());
    }
    if value.contains(':') {
        let (address, zone) = match value.split_once('%') {
            Some((address, zone)) => (address, Some(zone)),
            None => (value, None),
        };
        let zone_ok = zone.map_or(true, |z| {
            !z.is_empty()
                && z.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        });
        return if address.parse::<std::net::Ipv6Addr>().is_ok() && zone_ok {
            Ok(())
        } else {
            refuse("not a valid IPv6 address")
        };
    }
    let name = value.strip_suffix('.').unwrap_or(value);
    let label_ok = |label: &str| {
        (1..=63).contains(&label.len())
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if name.split('.').all(label_ok) {
        Ok(())
    } else {
        refuse("use letters, digits, '-' and '_' in dot-separated labels of 1-63 characters, not starting or ending with '-'")
    }
}

/// A user name ssh logs in as: 1-64 ASCII letters, digits, `.`, `_` and
/// `-`, not starting with `-` (what `useradd` accepts, shell-safe).
pub(crate) fn check_user_name(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("must not be empty".to_string());
    }
    let ok = value.len() <= MAX_USER_LEN
        && !value.starts_with('-')
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{} is not a user name: use 1-{MAX_USER_LEN} letters, digits, '.', '_' and '-', not starting with '-'",
            shown(value)
        ))
    }
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

#[cfg(test)]
mod host_and_user_tests {
    use super::*;

    #[test]
    fn host_names_and_addresses() {
        for ok in [
            "127.0.0.1",
            "10.211.7.2",
            "k6-host",
            "k6.example.org",
            "k6.example.org.",
            "node_1.lab",
            "::1",
            "fe80::1%eth0",
            "2001:db8::2",
            &format!("{}.{}", "a".repeat(63), "b".repeat(63)),
        ] {
            assert_eq!(check_host_name(ok), Ok(()), "{ok:?}");
        }
        for bad in [
            "",
            "-oProxyCommand=x",
            "host name",
            "host\n",
            "h\"ost",
            "h'ost",
            "`id`",
            "$(id)",
            "${HOME}",
            "user@host",
            "host:22",
            "[::1]",
            "a..b",
            "-a.b",
            "a-.b",
            "k6\u{200b}host",
            "k6\u{feff}",
            "ho;st",
            "ho/st",
            "fe80::1%",
            "fe80::1%e th0",
            &"a".repeat(64),
            &format!("{}.b", "a".repeat(64)),
        ] {
            assert!(check_host_name(bad).is_err(), "{bad:?} accepted");
        }
        let huge = "a".repeat(10 * 1024 * 1024);
        let error = check_host_name(&huge).unwrap_err();
        assert!(error.len() < 300, "the error quotes the whole value");
    }

    #[test]
    fn user_names() {
        for ok in ["ubuntu", "root", "k6_runner", "svc.k6", "a-b", "_x", "U1"] {
            assert_eq!(check_user_name(ok), Ok(()), "{ok:?}");
        }
        for bad in [
            "",
            "-oProxyCommand=x",
            "a b",
            "a\"b",
            "a'b",
            "`id`",
            "$(id)",
            "${USER}",
            "a@b",
            "a\u{200b}",
            "ä",
            &"u".repeat(65),
        ] {
            assert!(check_user_name(bad).is_err(), "{bad:?} accepted");
        }
        let error = check_user_name(&"u".repeat(10 * 1024 * 1024)).unwrap_err();
        assert!(error.len() < 300);
    }
}
