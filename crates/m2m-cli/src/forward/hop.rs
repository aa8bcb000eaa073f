//! Hop-by-hop headers (RFC 9110 §7.6.1): they describe one connection, so a proxy removes them
//! in both directions instead of passing them on.

use axum::http::header::{self, HeaderName};
use axum::http::{HeaderMap, HeaderValue};

/// The fixed hop-by-hop headers; `Proxy-*` and whatever `Connection` names come on top. A
/// `static`, not a `const`: a `const` array is built (and dropped) again at every use.
static HOP_BY_HOP: [HeaderName; 6] = [
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
///
/// Runs on every request and every response (most upstreams answer `Connection: keep-alive`),
/// so it allocates nothing in the usual cases: the names are looked up as `&str` (parsed on the
/// stack), and the `Connection` values are shared bytes.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most requests carry none of them: one pass over the names (standard names compare as
    // small integers), no hashing, nothing to remove. `Connection` is in the list, so the
    // headers it names are found below whenever it is present.
    if !headers
        .keys()
        .any(|name| HOP_BY_HOP.contains(name) || is_proxy(name))
    {
        return;
    }
    let mut listed = headers.get_all(header::CONNECTION).iter();
    let first = listed.next().cloned();
    // A second `Connection` header is rare: only then does this allocate.
    let more: Vec<HeaderValue> = listed.cloned().collect();
    for value in first.iter().chain(&more) {
        for name in value.to_str().unwrap_or_default().split(',') {
            // Not a header name (empty, `close`-like tokens are names too): nothing to remove.
            headers.remove(name.trim());
        }
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
    while let Some(name) = headers.keys().find(|name| is_proxy(name)).cloned() {
        headers.remove(&name);
    }
}

fn is_proxy(name: &HeaderName) -> bool {
    name.as_str().starts_with("proxy-")
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn every_connection_header_counts_and_junk_tokens_are_ignored() {
        let mut h = HeaderMap::new();
        for (name, value) in [
            ("connection", "x-a,, bad name ,"),
            ("connection", "X-B"),
            ("x-a", "1"),
            ("x-b", "2"),
            ("proxy-a", "3"),
            ("proxy-b", "4"),
            ("x-kept", "5"),
        ] {
            h.append(name, HeaderValue::from_static(value));
        }
        strip_hop_by_hop(&mut h);
        let left: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, ["x-kept"]);
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
