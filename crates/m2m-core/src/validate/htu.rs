//! RFC 3986 §6.2.2 syntax-based normalisation of an http(s) URI for comparing a DPoP proof's
//! `htu` with the request: the two name the same resource when their normal forms are equal.
//!
//! Steps: query and fragment dropped (RFC 9449 §4.3 ignores them), scheme and host lower-cased,
//! percent-encodings upper-cased and unreserved characters decoded, the scheme's default port
//! dropped (§6.2.3), dot segments removed (§5.2.4), an empty path made `/`. Anything that is not
//! an absolute `http`/`https` URI with a host, or holds user information, has no normal form:
//! such an `htu` never matches.

/// The normal form of `uri`, or `None` when it is not a usable http(s) URI.
pub(crate) fn normalize(uri: &str) -> Option<String> {
    let uri = crate::dpop::htu_of(uri);
    if uri.bytes().any(|b| b <= b' ' || b >= 0x7f) {
        return None;
    }
    let (scheme, rest) = uri.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => "80",
        "https" => "443",
        _ => return None,
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if authority.contains('@') {
        return None;
    }
    let (host, port) = split_host_port(authority)?;
    let host = percent_normalize(host)?.to_ascii_lowercase();
    if host.is_empty() {
        return None;
    }
    let port = match port {
        None | Some("") => None,
        Some(p) if p.bytes().all(|b| b.is_ascii_digit()) => {
            let p = p.parse::<u16>().ok()?.to_string();
            (p != default_port).then_some(p)
        }
        Some(_) => return None,
    };
    let path = remove_dot_segments(&percent_normalize(path)?);
    let mut out = String::with_capacity(uri.len() + 1);
    out.push_str(&scheme);
    out.push_str("://");
    out.push_str(&host);
    if let Some(port) = port {
        out.push(':');
        out.push_str(&port);
    }
    out.push_str(&path);
    Some(out)
}

/// `host` and the text after its `:`, if any; an IPv6 literal keeps its brackets.
fn split_host_port(authority: &str) -> Option<(&str, Option<&str>)> {
    if authority.starts_with('[') {
        let end = authority.find(']')?;
        let (host, rest) = authority.split_at(end + 1);
        return match rest {
            "" => Some((host, None)),
            _ => Some((host, Some(rest.strip_prefix(':')?))),
        };
    }
    Some(match authority.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    })
}

/// Upper-cases the hex digits of every `%XX` and decodes those that encode an unreserved
/// character (RFC 3986 §6.2.2.2); a `%` not followed by two hex digits makes the URI invalid.
fn percent_normalize(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            let value = u8::from_str_radix(hex, 16).ok()?;
            if value.is_ascii_alphanumeric() || matches!(value, b'-' | b'.' | b'_' | b'~') {
                out.push(char::from(value));
            } else {
                out.push('%');
                out.push_str(&hex.to_ascii_uppercase());
            }
            i += 3;
        } else {
            out.push(char::from(bytes[i]));
            i += 1;
        }
    }
    Some(out)
}

/// RFC 3986 §5.2.4 for an absolute path (or the empty path, which becomes `/`).
fn remove_dot_segments(path: &str) -> String {
    let Some(rest) = path.strip_prefix('/') else {
        return "/".to_owned();
    };
    let segments: Vec<&str> = rest.split('/').collect();
    let last = segments.len() - 1;
    let mut out: Vec<&str> = Vec::with_capacity(segments.len());
    for (i, segment) in segments.into_iter().enumerate() {
        match segment {
            "." | ".." => {
                if segment == ".." {
                    out.pop();
                }
                if i == last {
                    out.push("");
                }
            }
            _ => out.push(segment),
        }
    }
    let mut normal = String::with_capacity(path.len());
    for segment in out {
        normal.push('/');
        normal.push_str(segment);
    }
    if normal.is_empty() {
        normal.push('/');
    }
    normal
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn equivalent_forms_normalize_to_one() {
        let same = [
            ("https://AS.Example/token", "https://as.example/token"),
            ("HTTPS://as.example:443/token", "https://as.example/token"),
            ("http://as.example:80/token", "http://as.example/token"),
            ("https://as.example", "https://as.example/"),
            ("https://as.example:/x", "https://as.example/x"),
            ("https://as.example/a/./b/../c", "https://as.example/a/c"),
            ("https://as.example/a/..", "https://as.example/"),
            ("https://as.example/../../x", "https://as.example/x"),
            (
                "https://as.example/%7euser/%2fx",
                "https://as.example/~user/%2Fx",
            ),
            ("https://as.example/%2E%2E/x", "https://as.example/x"),
            ("https://as.example/t?q=1#f", "https://as.example/t"),
            ("http://[::1]:8080/t", "http://[::1]:8080/t"),
            ("http://127.0.0.1:0080/t", "http://127.0.0.1/t"),
        ];
        for (input, expected) in same {
            assert_eq!(normalize(input).as_deref(), Some(expected), "{input}");
        }
    }

    #[test]
    fn different_resources_stay_different() {
        assert_ne!(
            normalize("https://as.example/Token"),
            normalize("https://as.example/token")
        );
        assert_ne!(
            normalize("https://as.example:8443/t"),
            normalize("https://as.example/t")
        );
        assert_ne!(
            normalize("http://as.example/t"),
            normalize("https://as.example/t")
        );
        assert_ne!(
            normalize("https://as.example/t/"),
            normalize("https://as.example/t")
        );
    }

    #[test]
    fn unusable_uris_have_no_normal_form() {
        for bad in [
            "",
            "/token",
            "ftp://as.example/t",
            "https://user@as.example/t",
            "https:///t",
            "https://as.example:99999/t",
            "https://as.example:x/t",
            "https://as.example/%zz",
            "https://as.example/a b",
            "https://[::1/t",
        ] {
            assert_eq!(normalize(bad), None, "{bad:?}");
        }
    }
}
