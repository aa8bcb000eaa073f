//! Human-readable times for `m2m decode`: RFC 3339 UTC plus "in 59s" / "3m ago", computed from
//! an injected `now` so the formatting is tested without a clock.

/// `2024-05-01T12:00:00Z (in 59s)` for a Unix time in seconds, relative to `now`.
pub(crate) fn describe(secs: i64, now: i64) -> String {
    format!("{} ({})", rfc3339(secs), relative(secs - now))
}

/// RFC 3339 UTC with second precision (days-from-civil inverse, H. Hinnant's algorithm).
pub(crate) fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{d:02}T{h:02}:{m:02}:{s:02}Z")
}

/// "in 59s", "3m ago", "now", with the two largest units for long spans ("2h 5m ago").
pub(crate) fn relative(delta: i64) -> String {
    if delta == 0 {
        return "now".to_owned();
    }
    let span = span(delta.unsigned_abs());
    if delta > 0 {
        format!("in {span}")
    } else {
        format!("{span} ago")
    }
}

fn span(secs: u64) -> String {
    let units = [(86_400, "d"), (3600, "h"), (60, "m"), (1, "s")];
    let mut parts = Vec::new();
    let mut rest = secs;
    for (size, name) in units {
        if rest >= size {
            parts.push(format!("{}{name}", rest / size));
            rest %= size;
        }
        if parts.len() == 2 {
            break;
        }
    }
    if parts.len() == 2 && parts[0].ends_with('d') && parts[1].ends_with('m') {
        parts.truncate(1);
    }
    parts.join(" ")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_714_564_800), "2024-05-01T12:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(relative(59), "in 59s");
        assert_eq!(relative(-180), "3m ago");
        assert_eq!(relative(7_500), "in 2h 5m");
        assert_eq!(relative(0), "now");
        assert_eq!(
            describe(1_714_564_859, 1_714_564_800),
            "2024-05-01T12:00:59Z (in 59s)"
        );
    }
}
