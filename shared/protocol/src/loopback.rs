//! Plain `http://` only to a loopback host: a token (or the secret that
//! mints one) never crosses a network in cleartext. The broker applies it
//! to the upstream URLs it is configured with, the client to the broker's
//! URL and to the API base URL it sends a token to.

use std::net::{IpAddr, Ipv6Addr};

/// Whether `host` is this machine: `localhost` (any case), an IPv4 address
/// in 127.0.0.0/8 or `::1` (bracketed as in a URL, `[::1]`, or not).
///
/// `host` is as a URL parser gives it (`url::Url::host_str`); no name
/// resolution: `127.0.0.1.example` or `localhost.example` are not loopback.
///
/// ```
/// use shop_token_protocol::loopback::is_loopback_host;
///
/// assert!(is_loopback_host("127.0.0.1"));
/// assert!(is_loopback_host("[::1]"));
/// assert!(is_loopback_host("localhost"));
/// assert!(!is_loopback_host("10.0.0.1"));
/// ```
pub fn is_loopback_host(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    match host
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
    {
        // Brackets enclose an IPv6 address only.
        Some(v6) => v6.parse::<Ipv6Addr>().is_ok_and(|ip| ip.is_loopback()),
        None => host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback()),
    }
}

/// Whether a URL with `scheme` (lowercase, as URL parsers give it) and
/// `host` may carry a token: `https` to any host, `http` only to a loopback
/// host ([`is_loopback_host`]), nothing else.
///
/// ```
/// use shop_token_protocol::loopback::scheme_allowed;
///
/// assert!(scheme_allowed("https", "api.myshoptet.com"));
/// assert!(scheme_allowed("http", "127.0.0.1"));
/// assert!(!scheme_allowed("http", "api.myshoptet.com"));
/// ```
pub fn scheme_allowed(scheme: &str, host: &str) -> bool {
    match scheme {
        "https" => !host.is_empty(),
        "http" => is_loopback_host(host),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_localhost_127_slash_8_and_ipv6_one() {
        for host in [
            "localhost",
            "LocalHost",
            "127.0.0.1",
            "127.1.2.3",
            "[::1]",
            "::1",
            "[0:0:0:0:0:0:0:1]",
        ] {
            assert!(is_loopback_host(host), "{host:?} refused");
        }
        for host in [
            "",
            "10.0.0.1",
            "0.0.0.0",
            "[::]",
            "127.0.0.1.evil.example",
            "localhost.example",
            "[127.0.0.1]",
            "[::1",
            "::1]",
            "api.myshoptet.com",
        ] {
            assert!(!is_loopback_host(host), "{host:?} accepted");
        }
    }

    #[test]
    fn https_anywhere_http_only_on_loopback() {
        assert!(scheme_allowed("https", "12345.myshoptet.com"));
        assert!(scheme_allowed("http", "localhost"));
        assert!(scheme_allowed("http", "[::1]"));
        assert!(!scheme_allowed("http", "12345.myshoptet.com"));
        assert!(!scheme_allowed("ftp", "localhost"));
        assert!(!scheme_allowed("https", ""));
    }
}
