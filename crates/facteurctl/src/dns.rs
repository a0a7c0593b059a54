//! `facteurctl dns-records DOMAIN`: the DNS records to publish so that the
//! world delivers DOMAIN's mail to this server and believes mail from it.
//!
//! Prints zone-file lines: the MX of DOMAIN (the configured host name), the
//! host's A/AAAA records, SPF for DOMAIN (`v=spf1 mx -all`: only the MX hosts
//! send) and for the host name itself (the HELO identity), DMARC
//! (`p=quarantine`, aggregate reports to postmaster@DOMAIN), the DKIM keys
//! of the domain that are not retired (`facteurctl dkim`), TLS-RPT and
//! MTA-STS (RFC 8460, RFC 8461: the TXT records and the policy file to
//! serve over HTTPS), SRV records that let mail clients find the server
//! (RFC 6186, RFC 8314: implicit TLS first), and as comments what cannot be
//! a zone record: the PTR (set by whoever owns the address).
//!
//! Addresses come from `--ipv4`/`--ipv6`, else from resolving the host name
//! and keeping only public addresses (a loopback or private address in a
//! public zone breaks delivery); placeholders are printed when none is known.
//!
//! Standards: RFC 5321 §5 (MX), RFC 7208 (SPF), RFC 6376 (DKIM), RFC 7489
//! (DMARC), RFC 8460 (TLS-RPT), RFC 8461 (MTA-STS), RFC 6186 and RFC 8314
//! (SRV).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, ToSocketAddrs};

/// Checks and normalises a domain name (lower case, no final dot; ASCII
/// labels, as a zone file and the DKIM key store take them).
pub fn domain_name(s: &str) -> anyhow::Result<String> {
    let d = s.trim().trim_end_matches('.').to_ascii_lowercase();
    if facteur_dkim::check_domain(&d).is_err() {
        anyhow::bail!("{s:?} is not a domain name");
    }
    Ok(d)
}

/// An address that may appear in public DNS.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => {
            let [o0, o1, ..] = a.octets();
            !(a.is_loopback()
                || a.is_private()
                || a.is_link_local()
                || a.is_unspecified()
                || a.is_broadcast()
                || a.is_documentation()
                || (o0 == 100 && (64..128).contains(&o1)))
        }
        IpAddr::V6(a) => {
            let s0 = a.segments()[0];
            !(a.is_loopback()
                || a.is_unspecified()
                || (s0 & 0xfe00) == 0xfc00
                || (s0 & 0xffc0) == 0xfe80
                || s0 == 0x2001 && a.segments()[1] == 0x0db8)
        }
    }
}

/// The public addresses `host` resolves to.
pub fn public_addresses(host: &str) -> (Vec<Ipv4Addr>, Vec<Ipv6Addr>) {
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    if let Ok(addrs) = (host, 25).to_socket_addrs() {
        for a in addrs {
            match a.ip() {
                ip if !is_public(ip) => {}
                IpAddr::V4(x) if !v4.contains(&x) => v4.push(x),
                IpAddr::V6(x) if !v6.contains(&x) => v6.push(x),
                _ => {}
            }
        }
    }
    (v4, v6)
}

/// One record to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rec {
    /// Owner name, without the final dot.
    pub name: String,
    /// `MX`, `A`, `AAAA`, `TXT`, `SRV`.
    pub rtype: &'static str,
    /// The record data as a zone file writes it.
    pub data: String,
    /// The value [`crate::dnscheck`] compares with what is published: the
    /// text of a TXT record (strings joined), the other types' fields
    /// separated by spaces, names in lower case without the final dot.
    pub value: String,
    /// A comment after the line (the state of a DKIM key).
    pub note: String,
}

impl Rec {
    fn new(name: &str, rtype: &'static str, data: String) -> Rec {
        let value = match rtype {
            "TXT" => data.trim_matches('"').to_string(),
            _ => data.trim_end_matches('.').to_ascii_lowercase(),
        };
        Rec {
            name: name.to_string(),
            rtype,
            data,
            value,
            note: String::new(),
        }
    }

    /// A TXT record of any length (cut into strings of 255 bytes).
    pub fn txt(name: &str, text: &str, note: String) -> Rec {
        let parts: Vec<String> = text
            .as_bytes()
            .chunks(255)
            .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
            .collect();
        Rec {
            name: name.to_string(),
            rtype: "TXT",
            data: if parts.len() == 1 {
                parts.concat()
            } else {
                format!("( {} )", parts.join(" "))
            },
            value: text.to_string(),
            note,
        }
    }
}

/// The records for `domain` served by `host`, with `dkim` (the TXT
/// records of its keys) after the others.
pub fn record_set(
    domain: &str,
    host: &str,
    v4: &[Ipv4Addr],
    v6: &[Ipv6Addr],
    dkim: &[Rec],
) -> Vec<Rec> {
    let mut v = vec![Rec::new(domain, "MX", format!("10 {host}."))];
    if v4.is_empty() && v6.is_empty() {
        v.push(Rec::new(
            host,
            "A",
            "<public IPv4 address of this server>".into(),
        ));
        v.push(Rec::new(
            host,
            "AAAA",
            "<public IPv6 address of this server, if any>".into(),
        ));
    }
    for a in v4 {
        v.push(Rec::new(host, "A", a.to_string()));
    }
    for a in v6 {
        v.push(Rec::new(host, "AAAA", a.to_string()));
    }
    v.push(Rec::new(domain, "TXT", "\"v=spf1 mx -all\"".into()));
    if host != domain {
        v.push(Rec::new(host, "TXT", "\"v=spf1 a -all\"".into()));
    }
    v.push(Rec::new(
        &format!("_dmarc.{domain}"),
        "TXT",
        format!("\"v=DMARC1; p=quarantine; rua=mailto:postmaster@{domain}\""),
    ));
    v.push(Rec::new(
        &format!("_smtp._tls.{domain}"),
        "TXT",
        format!("\"v=TLSRPTv1; rua=mailto:postmaster@{domain}\""),
    ));
    // The policy's id must change whenever the policy does.
    v.push(Rec::new(
        &format!("_mta-sts.{domain}"),
        "TXT",
        format!("\"v=STSv1; id={}\"", policy_id(host)),
    ));
    for (service, port) in [
        ("_submissions._tcp", 465),
        ("_submission._tcp", 587),
        ("_imaps._tcp", 993),
        ("_imap._tcp", 143),
        ("_pop3s._tcp", 995),
        ("_pop3._tcp", 110),
    ] {
        // Priority: implicit TLS before STARTTLS (RFC 8314 §5.1).
        let prio = if service.contains("s._") { 0 } else { 10 };
        v.push(Rec::new(
            &format!("{service}.{domain}"),
            "SRV",
            format!("{prio} 1 {port} {host}."),
        ));
    }
    v.extend(dkim.iter().cloned());
    v
}

/// One zone-file line, with `check` (a verdict of `--check`) or the
/// record's note as its comment.
pub fn zone_line(r: &Rec, check: Option<&str>) -> String {
    let head = format!(
        "{:<28} 3600 IN {:<5} {}",
        format!("{}.", r.name),
        r.rtype,
        r.data
    );
    match check.or((!r.note.is_empty()).then_some(r.note.as_str())) {
        Some(c) => format!("{head} ; {c}\n"),
        None => format!("{head}\n"),
    }
}

/// The records for `domain` served by `host` as zone-file lines with the
/// notes an administrator needs; `checks`: one verdict per record of
/// [`record_set`] (`--check`).
pub fn records(
    domain: &str,
    host: &str,
    v4: &[Ipv4Addr],
    v6: &[Ipv6Addr],
    dkim: &[Rec],
    checks: Option<&[String]>,
) -> String {
    let set = record_set(domain, host, v4, v6, dkim);
    let mut out = String::new();
    let mut dkim_header = false;
    for (i, r) in set.iter().enumerate() {
        if !dkim_header && r.name.contains("._domainkey.") {
            out.push_str("\n; DKIM (facteurctl dkim dns prints these alone):\n");
            dkim_header = true;
        }
        out.push_str(&zone_line(
            r,
            checks.and_then(|c| c.get(i)).map(String::as_str),
        ));
    }
    out.push('\n');
    if v4.is_empty() && v6.is_empty() {
        out.push_str(&format!(
            "; {host} has no public address here: replace the placeholders, or run\n\
             ; again with --ipv4 ADDRESS and --ipv6 ADDRESS.\n"
        ));
    }
    if dkim.is_empty() {
        out.push_str(&format!(
            "; DKIM: {domain} has no keys yet, so its mail leaves unsigned:\n\
             ; `facteurctl dkim generate {domain}` makes them and prints their records.\n"
        ));
    }
    out.push_str(&format!(
        "; MTA-STS: serve this file as https://mta-sts.{domain}/.well-known/mta-sts.txt\n\
         ; (mta-sts.{domain} needs an A/AAAA record and a valid certificate; start with\n\
         ; mode: testing, then enforce once TLS-RPT reports are clean):\n\
         ;   version: STSv1\n\
         ;   mode: testing\n\
         ;   mx: {host}\n\
         ;   max_age: 604800\n"
    ));
    let addrs: Vec<String> = v4
        .iter()
        .map(ToString::to_string)
        .chain(v6.iter().map(ToString::to_string))
        .collect();
    let which = if addrs.is_empty() {
        "this server's addresses".to_string()
    } else {
        addrs.join(" and ")
    };
    out.push_str(&format!(
        "; PTR: the reverse DNS of {which} must be {host}: many receivers\n\
         ; refuse mail otherwise. It is set by whoever owns the address: your hosting\n\
         ; provider's panel or support, not your zone.\n\
         ; Make sure postmaster@{domain} exists (an alias will do): DMARC reports go there.\n"
    ));
    out
}

/// An MTA-STS policy id: stable for one host name (the policy printed
/// names only the host), changes when it does.
fn policy_id(host: &str) -> String {
    // FNV-1a: short, stable across versions and machines.
    let h = host.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_with_addresses() {
        let r = records(
            "example.org",
            "mail.example.org",
            &["192.0.2.1".parse().unwrap()],
            &["2001:db8::1".parse().unwrap()],
            &[Rec::txt(
                "s._domainkey.example.org",
                "v=DKIM1; k=ed25519; p=AAAA",
                "signing".into(),
            )],
            None,
        );
        let has = |s: &str| assert!(r.contains(s), "{s:?} missing in\n{r}");
        has("example.org.                 3600 IN MX    10 mail.example.org.\n");
        has("mail.example.org.            3600 IN A     192.0.2.1\n");
        has("mail.example.org.            3600 IN AAAA  2001:db8::1\n");
        has("example.org.                 3600 IN TXT   \"v=spf1 mx -all\"\n");
        has("mail.example.org.            3600 IN TXT   \"v=spf1 a -all\"\n");
        has(
            "_dmarc.example.org.          3600 IN TXT   \"v=DMARC1; p=quarantine; rua=mailto:postmaster@example.org\"\n",
        );
        has("reverse DNS of 192.0.2.1 and 2001:db8::1 must be mail.example.org:");
        has(
            "\ns._domainkey.example.org.    3600 IN TXT   \"v=DKIM1; k=ed25519; p=AAAA\" ; signing\n",
        );
        has(
            "_smtp._tls.example.org.      3600 IN TXT   \"v=TLSRPTv1; rua=mailto:postmaster@example.org\"\n",
        );
        has("_mta-sts.example.org.        3600 IN TXT   \"v=STSv1; id=");
        has(";   mx: mail.example.org\n");
        has("_submissions._tcp.example.org. 3600 IN SRV   0 1 465 mail.example.org.\n");
        has("_imap._tcp.example.org.      3600 IN SRV   10 1 143 mail.example.org.\n");
        has("_pop3s._tcp.example.org.     3600 IN SRV   0 1 995 mail.example.org.\n");
        assert!(!r.contains("has no keys"));
        assert!(!r.contains('<'));
    }

    #[test]
    fn placeholders_without_addresses() {
        let r = records("example.org", "example.org", &[], &[], &[], None);
        assert!(r.contains("IN A     <public IPv4 address"), "{r}");
        assert!(r.contains("--ipv4"));
        // The host is the domain: one SPF record, not two.
        assert_eq!(r.matches("v=spf1").count(), 1);
        assert!(r.contains("`facteurctl dkim generate example.org`"), "{r}");
    }

    #[test]
    fn only_public_addresses() {
        for a in [
            "127.0.1.1",
            "10.1.2.3",
            "192.168.1.1",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
        ] {
            assert!(!is_public(a.parse().unwrap()), "{a}");
        }
        for a in ["203.0.114.7", "8.8.8.8", "2a01:4f8::1"] {
            assert!(is_public(a.parse().unwrap()), "{a}");
        }
    }

    #[test]
    fn domain_names() {
        assert_eq!(domain_name("Example.ORG.").unwrap(), "example.org");
        for bad in ["", "a..b", "-a.org", "a b.org", "x@y.org"] {
            assert!(domain_name(bad).is_err(), "{bad}");
        }
    }
}
