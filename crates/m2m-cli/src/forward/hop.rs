//! Hop-by-hop headers (RFC 9110 §7.6.1): they describe one connection, so a proxy removes them
//! in both directions instead of passing them on.

use axum::http::HeaderMap;
use axum::http::header::{self, HeaderName};

/// The fixed hop-by-hop headers; `Proxy-*` and whatever `Connection` names come on top.
const HOP_BY_HOP: [HeaderName; 6] = [
    header::CONNECTION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    HeaderName::from_static("keep-alive"),
];

/// Removes the hop-by-hop headers from `headers`: the ones `Connection` names, `Connection`
/// itself, `Keep-Alive`, `TE`, `Trailer`, `Transfer-Encoding`, `Upgrade` and every `Proxy-*`
/// (`Proxy-Authorization` belongs to the hop to this proxy, never to the upstream).
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages carry none of them: one pass over the names (standard names compare as
    // small integers), no hashing, nothing to remove. `Connection` is in the list, so the
    // headers it names are found below whenever it is present.
    if !headers
        .keys()
        .any(|name| HOP_BY_HOP.contains(name) || name.as_str().starts_with("proxy-"))
    {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
    let proxy: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with("proxy-"))
        .cloned()
        .collect();
    for name in proxy {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn removes_fixed_named_and_proxy_headers_only() {
        let mut h = HeaderMap::new();
        for (name, value) in [
            ("connection", "keep-alive, X-Secret-Hop"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("trailer", "x-checksum"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("proxy-authorization", "Basic abc"),
            ("proxy-connection", "keep-alive"),
            ("x-secret-hop", "1"),
            ("content-type", "application/json"),
            ("accept", "text/event-stream"),
        ] {
            h.append(name, HeaderValue::from_static(value));
        }
        strip_hop_by_hop(&mut h);
        let left: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, ["content-type", "accept"]);
    }

    #[test]
    fn each_kind_alone_is_found() {
        for (name, value) in [
            ("connection", "close"),
            ("upgrade", "h2c"),
            ("proxy-authorization", "Basic abc"),
            ("proxy-x", "1"),
            ("keep-alive", "timeout=5"),
        ] {
            let mut h = HeaderMap::new();
            h.insert("accept", HeaderValue::from_static("*/*"));
            h.insert(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
            strip_hop_by_hop(&mut h);
            assert_eq!(h.len(), 1, "{name} left in {h:?}");
        }
        let mut h = HeaderMap::new();
        h.insert("accept", HeaderValue::from_static("*/*"));
        h.insert("x-proxy-id", HeaderValue::from_static("kept"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 2, "only names starting with proxy- go");
    }
}
