//! Gateway URLs and the exporter's listen addresses.

use std::net::SocketAddr;

/// Split `http://host:port/path` into host and port. Only http and https.
/// The host is as the `url` crate (and so reqwest) reads it: a domain in
/// lower case, an IPv4 address in dotted form, an IPv6 one without brackets.
pub fn parse_gateway_url(text: &str) -> Result<(String, u16), String> {
    let bad = |why: &dyn std::fmt::Display| format!("gateway url {text:?}: {why}");
    let (scheme, rest) = text
        .split_once("://")
        .ok_or_else(|| bad(&"expected http://host:port"))?;
    if !matches!(scheme, "http" | "https") {
        return Err(bad(&"scheme must be http or https"));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if let Some((_, host)) = authority.rsplit_once('@') {
        // Never echo the credentials, not even in a parse error.
        return Err(format!(
            "gateway url \"{scheme}://***@{host}\": credentials in the url are not supported"
        ));
    }
    if authority.is_empty() {
        // The url crate would read `http:///h` as `http://h/`.
        return Err(bad(&"missing host"));
    }
    let url = url::Url::parse(text).map_err(|e| bad(&e))?;
    let host = match url.host() {
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        Some(host) => host.to_string(),
        None => return Err(bad(&"missing host")),
    };
    match url.port_or_known_default() {
        Some(port) if port != 0 => Ok((host, port)),
        port => Err(bad(&format_args!("invalid port {}", port.unwrap_or(0)))),
    }
}

/// The `gateway` label of a gateway that names none: `host:port`.
pub(super) fn default_name(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Resolve a node_exporter style listen address: `:9789` means every interface.
pub fn listen_addresses(spec: &str) -> Result<Vec<SocketAddr>, String> {
    if let Some(port) = spec.strip_prefix(':') {
        let port: u16 = port
            .parse()
            .map_err(|_| format!("invalid listen address {spec:?}: bad port"))?;
        return Ok(vec![
            SocketAddr::from(([0u16; 8], port)),
            SocketAddr::from(([0u8; 4], port)),
        ]);
    }
    spec.parse::<SocketAddr>()
        .map(|a| vec![a])
        .map_err(|_| format!("invalid listen address {spec:?}: expected host:port or :port"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(parse_gateway_url("http://h"), Ok(("h".into(), 80)));
        assert!(parse_gateway_url("ftp://h:1").is_err());
        assert!(parse_gateway_url("http://h:0").is_err());
        let err = parse_gateway_url("http://u:s3cret@h:1/x").unwrap_err();
        assert!(
            !err.contains("s3cret") && err.contains("http://***@h:1"),
            "{err}"
        );
        assert!(parse_gateway_url("127.0.0.1:18789").is_err());
        assert_eq!(parse_gateway_url("http://[::1]:2/"), Ok(("::1".into(), 2)));
        assert_eq!(
            parse_gateway_url("https://H.example"),
            Ok(("h.example".into(), 443))
        );
        for (bad, why) in [
            ("http:///h", "missing host"),
            ("http://:1", "empty host"),
            ("http://h:99999", "invalid port"),
            ("http://[::1", "invalid IPv6"),
        ] {
            let err = parse_gateway_url(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn listen() {
        assert_eq!(listen_addresses(":9789").unwrap().len(), 2);
        assert_eq!(
            listen_addresses("127.0.0.1:1").unwrap(),
            vec!["127.0.0.1:1".parse().unwrap()]
        );
        assert!(listen_addresses("nope").is_err());
    }
}
