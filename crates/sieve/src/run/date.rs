//! Date parts (RFC 5260 §4.2), zones, and civil-calendar arithmetic (days
//! from 1970-01-01 and back; Howard Hinnant's well-known algorithm, written
//! here from its description).

/// A moment and the zone it is shown in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Moment {
    /// Seconds since 1970-01-01T00:00:00Z.
    pub epoch: i64,
    /// Minutes east of UTC.
    pub offset: i32,
}

/// `+hhmm` / `-hhmm` (RFC 5260 §4.1's :zone) to minutes east of UTC.
pub fn parse_zone(z: &str) -> Option<i32> {
    let b = z.as_bytes();
    if b.len() != 5 || !matches!(b[0], b'+' | b'-') || !b[1..].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let h = i32::from(b[1] - b'0') * 10 + i32::from(b[2] - b'0');
    let m = i32::from(b[3] - b'0') * 10 + i32::from(b[4] - b'0');
    if h > 23 || m > 59 {
        return None;
    }
    let v = h * 60 + m;
    Some(if b[0] == b'-' { -v } else { v })
}

pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    (if m <= 2 { y + 1 } else { y }, m, d)
}

const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

fn zone_string(offset: i32, colon: bool) -> String {
    let sign = if offset < 0 { '-' } else { '+' };
    let a = offset.abs();
    if colon {
        format!("{sign}{:02}:{:02}", a / 60, a % 60)
    } else {
        format!("{sign}{:02}{:02}", a / 60, a % 60)
    }
}

/// The value of one date part, or None for an unknown part name.
pub fn part(m: Moment, name: &str) -> Option<String> {
    let local = m.epoch + i64::from(m.offset) * 60;
    let days = local.div_euclid(86_400);
    let secs = local.rem_euclid(86_400);
    let (y, mo, d) = civil_from_days(days);
    let (h, mi, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let wd = usize::try_from((days + 4).rem_euclid(7)).unwrap_or(0);
    Some(match name.to_ascii_lowercase().as_str() {
        "year" => format!("{y:04}"),
        "month" => format!("{mo:02}"),
        "day" => format!("{d:02}"),
        "date" => format!("{y:04}-{mo:02}-{d:02}"),
        // Modified Julian Day: days since 1858-11-17
        "julian" => (days + 40_587).to_string(),
        "hour" => format!("{h:02}"),
        "minute" => format!("{mi:02}"),
        "second" => format!("{s:02}"),
        "time" => format!("{h:02}:{mi:02}:{s:02}"),
        "iso8601" => format!(
            "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{}",
            zone_string(m.offset, true)
        ),
        "std11" => format!(
            "{}, {d:02} {} {y:04} {h:02}:{mi:02}:{s:02} {}",
            WEEKDAYS[wd],
            MONTHS[usize::try_from(mo - 1).unwrap_or(0)],
            zone_string(m.offset, false)
        ),
        "zone" => zone_string(m.offset, false),
        "weekday" => wd.to_string(),
        _ => return None,
    })
}

/// Parse an RFC 5322 date (a Date: field's value, or what follows the last
/// `;` of a Received: field).
pub fn parse_date(value: &str) -> Option<Moment> {
    let mut v = value.trim().as_bytes().to_vec();
    v.extend_from_slice(b"\r\n");
    match mail_parser::parsers::MessageStream::new(&v).parse_date() {
        mail_parser::HeaderValue::DateTime(d) if d.is_valid() => {
            let off = i32::from(d.tz_hour) * 60 + i32::from(d.tz_minute);
            Some(Moment {
                epoch: d.to_timestamp(),
                offset: if d.tz_before_gmt { -off } else { off },
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        for d in [-800_000i64, -1, 59, 11_016, 19_000, 2_932_896] {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), d);
        }
        assert_eq!(civil_from_days(days_from_civil(2000, 2, 29)), (2000, 2, 29));
    }

    #[test]
    fn parts() {
        let m = parse_date("Tue, 1 Apr 1997 09:06:31 -0800 (PST)").expect("parses");
        assert_eq!(part(m, "date").as_deref(), Some("1997-04-01"));
        assert_eq!(part(m, "time").as_deref(), Some("09:06:31"));
        assert_eq!(part(m, "zone").as_deref(), Some("-0800"));
        assert_eq!(part(m, "weekday").as_deref(), Some("2"));
        assert_eq!(part(m, "julian").as_deref(), Some("50539"));
        assert_eq!(
            part(m, "iso8601").as_deref(),
            Some("1997-04-01T09:06:31-08:00")
        );
        assert_eq!(
            part(m, "std11").as_deref(),
            Some("Tue, 01 Apr 1997 09:06:31 -0800")
        );
        let utc = Moment { offset: 0, ..m };
        assert_eq!(part(utc, "hour").as_deref(), Some("17"));
        assert_eq!(part(m, "nope"), None);
        assert_eq!(parse_zone("+0130"), Some(90));
        assert_eq!(parse_zone("-0000"), Some(0));
        assert_eq!(parse_zone("0100"), None);
        assert_eq!(parse_date("garbage"), None);
    }
}
