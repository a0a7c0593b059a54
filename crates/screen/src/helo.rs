//! HELO checks: the name a client gives must be a domain name or an
//! address literal (RFC 5321 §4.1.1.1), a literal must be the client's own
//! address, and no stranger may claim our own name.

use std::net::IpAddr;

/// Why a HELO name is refused, or `Ok`.
pub fn check(name: &str, client: IpAddr, ours: &[String]) -> Result<(), &'static str> {
    let name = name.trim_end_matches('.');
    if let Some(inner) = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        let text = inner
            .strip_prefix("IPv6:")
            .or_else(|| inner.strip_prefix("ipv6:"))
            .unwrap_or(inner);
        let Ok(ip) = text.parse::<IpAddr>() else {
            return Err("is not a valid address literal");
        };
        if inner.len() != text.len() && ip.is_ipv4() {
            return Err("is not a valid address literal");
        }
        let canon = |ip: IpAddr| match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        if canon(ip) != canon(client) {
            return Err("is not your address");
        }
        return Ok(());
    }
    let labels: Vec<&str> = name.split('.').collect();
    let label_ok = |l: &&str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if name.is_empty() || name.len() > 253 || !labels.iter().all(label_ok) {
        return Err("is not a valid host name");
    }
    // A bare address (no brackets) is a name whose top label is numeric:
    // no such top-level domain exists.
    if labels
        .last()
        .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err("is an address without brackets");
    }
    if ours.iter().any(|o| o.eq_ignore_ascii_case(name)) {
        return Err("is my name");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helo_names() {
        let ip: IpAddr = "192.0.2.9".parse().unwrap();
        let ours = vec!["mx.example.org".to_string()];
        for ok in [
            "mail.sender.example",
            "mail.sender.example.",
            "[192.0.2.9]",
            "localhost-2",
            "x_y.example",
        ] {
            assert_eq!(check(ok, ip, &ours), Ok(()), "{ok}");
        }
        for (bad, why) in [
            ("[192.0.2.10]", "is not your address"),
            ("[IPv6:192.0.2.9]", "is not a valid address literal"),
            ("[nonsense]", "is not a valid address literal"),
            ("192.0.2.9", "is an address without brackets"),
            ("MX.Example.org", "is my name"),
            ("bad..name", "is not a valid host name"),
            ("-bad.example", "is not a valid host name"),
            ("spaces here", "is not a valid host name"),
            ("", "is not a valid host name"),
        ] {
            assert_eq!(check(bad, ip, &ours), Err(why), "{bad}");
        }
        let v6: IpAddr = "2001:db8::5".parse().unwrap();
        assert_eq!(check("[IPv6:2001:db8::5]", v6, &ours), Ok(()));
        assert_eq!(
            check("[IPv6:2001:db8::6]", v6, &ours),
            Err("is not your address")
        );
    }
}
