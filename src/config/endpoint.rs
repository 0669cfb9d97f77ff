//! HTTP endpoints of the target: `{host.address}` substitution and the
//! `http(s)://host[:port][/path]` form the metrics clients rely on.
//!
//! Pure except [`primary_local_address`], which asks the kernel for a
//! route and sends nothing.

use std::net::{IpAddr, UdpSocket};

/// The placeholder lb configs use for the target's address.
pub(crate) const HOST_ADDRESS_PLACEHOLDER: &str = "{host.address}";

/// Replaces `{host.address}` in `url` with `address`.
pub(crate) fn substitute_host_address(url: &str, address: &str) -> String {
    url.replace(HOST_ADDRESS_PLACEHOLDER, address)
}

/// `url` with its host replaced by `address` when `replaced` says so for
/// the host (lower-cased); `url` unchanged otherwise, `None` when it has no
/// `scheme://host[:port]` to look at. An IPv6 `address` is bracketed.
pub(crate) fn replace_host(url: &str, replaced: fn(&str) -> bool, address: &str) -> Option<String> {
    let authority_start = url.find("://")? + "://".len();
    let rest = &url[authority_start..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (host, port) = split_host_port(&rest[..authority_end])?;
    if !replaced(&host.to_ascii_lowercase()) {
        return Some(url.to_string());
    }
    let host = if address.contains(':') && !address.starts_with('[') {
        format!("[{address}]")
    } else {
        address.to_string()
    };
    let port = port.map(|p| format!(":{p}")).unwrap_or_default();
    Some(format!(
        "{}{host}{port}{}",
        &url[..authority_start],
        &rest[authority_end..]
    ))
}

/// Checks that `text` is `http(s)://host[:port][/path]` and returns it
/// with the scheme lower-cased and trailing slashes removed.
///
/// No query, fragment or credentials: callers append API paths
/// (`/api/v1/query`, `/system/functions`) to this base.
pub(crate) fn http_base_url(text: &str) -> Result<String, String> {
    let lower = text.to_ascii_lowercase();
    let scheme = if lower.starts_with("https://") {
        "https"
    } else if lower.starts_with("http://") {
        "http"
    } else {
        return Err(format!("{text:?} must start with http:// or https://"));
    };
    let rest = &text[scheme.len() + "://".len()..];
    let (authority, path) = match rest.find('/') {
        Some(index) => rest.split_at(index),
        None => (rest, ""),
    };
    if authority.contains('@') {
        return Err(format!(
            "{text:?}: credentials in the URL are not supported; use openfaas_user/openfaas_password or prometheus_user/prometheus_password"
        ));
    }
    let (host, port) = split_host_port(authority).ok_or_else(|| {
        format!("{text:?}: expected {scheme}://host[:port][/path] with a valid host name, IP address or [IPv6] address")
    })?;
    if let Some(port) = port {
        match port.parse::<u16>() {
            Ok(p) if p > 0 && port.bytes().all(|b| b.is_ascii_digit()) => {}
            _ => return Err(format!("{text:?}: port {port:?} is not in 1..=65535")),
        }
    }
    if let Some(bad) = path.chars().find(|&c| !is_path_char(c)) {
        return Err(format!(
            "{text:?}: {bad:?} is not allowed in the path (no query, fragment, spaces or non-ASCII)"
        ));
    }
    let path = path.trim_end_matches('/');
    let port = port.map(|p| format!(":{p}")).unwrap_or_default();
    Ok(format!("{scheme}://{host}{port}{path}"))
}

/// `host[:port]` with host a DNS name, IPv4 address or `[IPv6]`.
fn split_host_port(authority: &str) -> Option<(&str, Option<&str>)> {
    let (host, port) = if let Some(inner) = authority.strip_prefix('[') {
        let end = inner.find(']')?;
        let address = &inner[..end];
        address.parse::<std::net::Ipv6Addr>().ok()?;
        let after = &inner[end + 1..];
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':')?),
        };
        (&authority[..end + 2], port)
    } else {
        let (host, port) = match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        };
        let host_ok = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_')
            && !host.starts_with(['-', '.']);
        if !host_ok {
            return None;
        }
        (host, port)
    };
    Some((host, port))
}

fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:@/%".contains(c)
}

/// The address other machines most likely reach this one at: the source
/// address of the default route, else `127.0.0.1`.
///
/// Connecting a UDP socket only selects a route; no packet is sent.
pub(crate) fn primary_local_address() -> String {
    let routed = UdpSocket::bind(("0.0.0.0", 0))
        .and_then(|socket| {
            socket.connect(("10.255.255.255", 1))?;
            socket.local_addr()
        })
        .map(|addr| addr.ip());
    match routed {
        Ok(ip @ IpAddr::V4(v4)) if !v4.is_loopback() && !v4.is_unspecified() => ip.to_string(),
        _ => "127.0.0.1".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_only_the_chosen_hosts() {
        let loopback = |host: &str| host == "localhost" || host == "127.0.0.1";
        let cases = [
            (
                "http://127.0.0.1:31112",
                "10.0.0.5",
                "http://10.0.0.5:31112",
            ),
            ("http://LocalHost/p/q", "10.0.0.5", "http://10.0.0.5/p/q"),
            ("https://localhost:1", "fd00::5", "https://[fd00::5]:1"),
            ("http://gateway:31112", "10.0.0.5", "http://gateway:31112"),
            (
                "http://127.0.0.2:31112",
                "10.0.0.5",
                "http://127.0.0.2:31112",
            ),
        ];
        for (url, address, expected) in cases {
            assert_eq!(
                replace_host(url, loopback, address).as_deref(),
                Some(expected),
                "{url}"
            );
        }
        assert_eq!(replace_host("127.0.0.1:31112", loopback, "x"), None);
    }

    #[test]
    fn accepts_and_normalises_http_urls() {
        let cases = [
            ("http://127.0.0.1:31112", "http://127.0.0.1:31112"),
            ("http://127.0.0.1:31112/", "http://127.0.0.1:31112"),
            ("HTTP://gateway.local", "http://gateway.local"),
            (
                "http://prom:9090/prometheus//",
                "http://prom:9090/prometheus",
            ),
            ("http://[::1]:9090", "http://[::1]:9090"),
            ("http://[fe80::1]", "http://[fe80::1]"),
            ("http://node_1:80/a%20b", "http://node_1:80/a%20b"),
            ("https://prom.lab:9090/", "https://prom.lab:9090"),
            ("HTTPS://[::1]:443/p", "https://[::1]:443/p"),
        ];
        for (input, expected) in cases {
            assert_eq!(http_base_url(input).as_deref(), Ok(expected), "{input}");
        }
    }

    #[test]
    fn rejects_what_the_clients_cannot_use() {
        let cases = [
            ("ftp://x", "must start with http:// or https://"),
            ("https://", "valid host"),
            ("https://user:pw@host", "credentials"),
            ("127.0.0.1:31112", "must start with http://"),
            ("http://", "valid host"),
            ("http://:80", "valid host"),
            ("http://user:pw@host", "credentials"),
            ("http://host:0", "not in 1..=65535"),
            ("http://host:65536", "not in 1..=65535"),
            ("http://host:+80", "not in 1..=65535"),
            ("http://host:", "not in 1..=65535"),
            ("http://ho st", "valid host"),
            ("http://{host.address}:31112", "valid host"),
            ("http://host/a?b=c", "not allowed in the path"),
            ("http://host/a#x", "not allowed in the path"),
            ("http://host/a\nb", "not allowed in the path"),
            ("http://[::1", "valid host"),
            ("http://[zz]:80", "valid host"),
            ("http://-host", "valid host"),
        ];
        for (input, expected) in cases {
            let reason = http_base_url(input).unwrap_err();
            assert!(reason.contains(expected), "{input}: {reason}");
        }
    }

    #[test]
    fn substitutes_the_placeholder() {
        assert_eq!(
            substitute_host_address("http://{host.address}:30411", "10.0.0.5"),
            "http://10.0.0.5:30411"
        );
        assert_eq!(
            substitute_host_address("http://fixed:1", "x"),
            "http://fixed:1"
        );
    }

    #[test]
    fn primary_address_is_an_ipv4_address() {
        let address = primary_local_address();
        assert!(address.parse::<std::net::Ipv4Addr>().is_ok(), "{address}");
    }
}
