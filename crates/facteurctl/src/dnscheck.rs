//! `facteurctl dns-records --check`: asks a resolver for every record that
//! `dns-records` prints and says, for each, whether what is published
//! matches (`ok`), is absent (`MISSING`) or differs (`DIFFERENT`, with what
//! is there).
//!
//! The queries are built and read with hickory-proto, the DNS wire format
//! alone (no resolver: facteurctl links no hickory-resolver, as the
//! administration tool must stay small): one query per name and type over
//! UDP with EDNS0 (4096 bytes, so an RSA DKIM record fits), again over TCP
//! when the answer comes back truncated; 5 s per try, two tries over UDP.
//! The resolver is the first `nameserver` of /etc/resolv.conf unless
//! `--nameserver` names one.
//!
//! Comparison ([`verdict`]): A, AAAA, MX and SRV by their fields (names in
//! lower case, without the final dot); TXT by its text, the strings of a
//! record joined. A TXT record of the same kind that differs (the same
//! `v=` tag) is DIFFERENT; the MTA-STS record only needs to exist (its `id`
//! is whatever the administrator last published).

use crate::dns::Rec;
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::str::FromStr;
use std::time::Duration;

/// What is published at a name for a type, as [`Rec::value`]s; empty when
/// nothing is (NXDOMAIN or no data).
pub trait Lookup {
    fn lookup(&self, name: &str, rtype: &str) -> Result<Vec<String>, String>;
}

/// The resolver to ask: `arg` ("ip", "ip:port", "[v6]:port"), else the
/// first nameserver of /etc/resolv.conf.
pub fn nameserver(arg: Option<String>) -> anyhow::Result<SocketAddr> {
    let text = match arg {
        Some(a) => a,
        None => std::fs::read_to_string("/etc/resolv.conf")
            .ok()
            .and_then(|t| {
                t.lines().find_map(|l| {
                    let mut w = l.split_whitespace();
                    (w.next() == Some("nameserver")).then(|| w.next().map(str::to_string))?
                })
            })
            .ok_or_else(|| {
                anyhow::anyhow!("no nameserver in /etc/resolv.conf: give --nameserver ADDRESS")
            })?,
    };
    if let Ok(sa) = text.parse::<SocketAddr>() {
        return Ok(sa);
    }
    let ip: IpAddr = text
        .trim_matches(|c| c == '[' || c == ']')
        .parse()
        .map_err(|_| anyhow::anyhow!("--nameserver {text:?}: an IP address, or address:port"))?;
    Ok(SocketAddr::new(ip, 53))
}

/// A resolver over UDP (and TCP for truncated answers).
#[derive(Debug)]
pub struct Udp {
    server: SocketAddr,
    timeout: Duration,
}

impl Udp {
    pub fn new(server: SocketAddr) -> Udp {
        Udp {
            server,
            timeout: Duration::from_secs(5),
        }
    }

    fn exchange(&self, name: &str, rtype: RecordType) -> Result<Message, String> {
        let n = Name::from_str(&format!("{}.", name.trim_end_matches('.')))
            .map_err(|e| format!("{name}: {e}"))?;
        let id: u16 = rand::random();
        let mut q = Message::new(id, MessageType::Query, OpCode::Query);
        q.metadata.recursion_desired = true;
        q.add_query(Query::query(n, rtype));
        let mut edns = Edns::new();
        edns.set_max_payload(4096);
        q.set_edns(edns);
        let wire = q.to_vec().map_err(|e| e.to_string())?;
        let bind: SocketAddr = if self.server.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        }
        .parse()
        .map_err(|_| "bad bind address".to_string())?;
        let sock = UdpSocket::bind(bind).map_err(|e| e.to_string())?;
        sock.connect(self.server).map_err(|e| e.to_string())?;
        sock.set_read_timeout(Some(self.timeout))
            .map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; 65_535];
        let mut last = String::from("no answer");
        for _ in 0..2 {
            sock.send(&wire).map_err(|e| e.to_string())?;
            let len = match sock.recv(&mut buf) {
                Ok(l) => l,
                Err(e) => {
                    last = format!("{}: {e}", self.server);
                    continue;
                }
            };
            let m = Message::from_vec(&buf[..len]).map_err(|e| e.to_string())?;
            if m.metadata.id != id {
                last = "answer with another id".into();
                continue;
            }
            if m.metadata.truncation {
                return self.exchange_tcp(&wire, id);
            }
            return Ok(m);
        }
        Err(last)
    }

    fn exchange_tcp(&self, wire: &[u8], id: u16) -> Result<Message, String> {
        let mut s = TcpStream::connect_timeout(&self.server, self.timeout)
            .map_err(|e| format!("{} (TCP): {e}", self.server))?;
        s.set_read_timeout(Some(self.timeout))
            .map_err(|e| e.to_string())?;
        let len = u16::try_from(wire.len()).map_err(|_| "query too long".to_string())?;
        s.write_all(&len.to_be_bytes())
            .and_then(|_| s.write_all(wire))
            .map_err(|e| e.to_string())?;
        let mut lb = [0u8; 2];
        s.read_exact(&mut lb).map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; usize::from(u16::from_be_bytes(lb))];
        s.read_exact(&mut buf).map_err(|e| e.to_string())?;
        let m = Message::from_vec(&buf).map_err(|e| e.to_string())?;
        if m.metadata.id != id {
            return Err("answer with another id".into());
        }
        Ok(m)
    }
}

fn name_text(n: &Name) -> String {
    n.to_ascii().trim_end_matches('.').to_ascii_lowercase()
}

impl Lookup for Udp {
    fn lookup(&self, name: &str, rtype: &str) -> Result<Vec<String>, String> {
        let t = match rtype {
            "A" => RecordType::A,
            "AAAA" => RecordType::AAAA,
            "MX" => RecordType::MX,
            "TXT" => RecordType::TXT,
            "SRV" => RecordType::SRV,
            other => return Err(format!("type {other} is not checked")),
        };
        let m = self.exchange(name, t)?;
        match m.metadata.response_code {
            ResponseCode::NoError | ResponseCode::NXDomain => {}
            rc => return Err(format!("the resolver answered {rc}")),
        }
        let mut out = Vec::new();
        for r in &m.answers {
            let v = match &r.data {
                RData::A(a) if t == RecordType::A => a.0.to_string(),
                RData::AAAA(a) if t == RecordType::AAAA => a.0.to_string(),
                RData::MX(mx) if t == RecordType::MX => {
                    format!("{} {}", mx.preference, name_text(&mx.exchange))
                }
                RData::SRV(s) if t == RecordType::SRV => format!(
                    "{} {} {} {}",
                    s.priority,
                    s.weight,
                    s.port,
                    name_text(&s.target)
                ),
                RData::TXT(txt) if t == RecordType::TXT => txt
                    .txt_data
                    .iter()
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect(),
                // CNAMEs on the way, and anything else: not a value.
                _ => continue,
            };
            out.push(v);
        }
        Ok(out)
    }
}

/// The `v=` tag a TXT record starts with (`v=spf1`, `v=DKIM1`, ...).
fn kind(txt: &str) -> &str {
    txt.split([';', ' ']).next().unwrap_or("")
}

/// The verdict for `r` given what is published; `true` when it matches.
pub fn verdict(r: &Rec, published: &[String]) -> (String, bool) {
    let same = |p: &String| {
        if r.rtype == "TXT" {
            p == &r.value || (kind(&r.value) == "v=STSv1" && kind(p) == "v=STSv1")
        } else {
            p.eq_ignore_ascii_case(&r.value)
        }
    };
    if published.iter().any(same) {
        return ("ok".into(), true);
    }
    let related: Vec<&String> = if r.rtype == "TXT" {
        published
            .iter()
            .filter(|p| kind(p).eq_ignore_ascii_case(kind(&r.value)))
            .collect()
    } else {
        published.iter().collect()
    };
    if related.is_empty() {
        return ("MISSING".into(), false);
    }
    let shown: Vec<String> = related
        .iter()
        .map(|p| {
            if r.rtype == "TXT" {
                format!("{p:?}")
            } else {
                (*p).clone()
            }
        })
        .collect();
    (format!("DIFFERENT: published {}", shown.join(", ")), false)
}

/// One verdict per record of `set`, and whether all are ok. Placeholders
/// (no address known) are not looked up.
pub fn check(set: &[Rec], l: &impl Lookup) -> (Vec<String>, bool) {
    let mut cache: HashMap<(String, &str), Result<Vec<String>, String>> = HashMap::new();
    let mut all_ok = true;
    let mut out = Vec::new();
    for r in set {
        if r.value.starts_with('<') {
            out.push("not checked: give --ipv4/--ipv6".into());
            all_ok = false;
            continue;
        }
        let published = cache
            .entry((r.name.to_ascii_lowercase(), r.rtype))
            .or_insert_with(|| l.lookup(&r.name, r.rtype));
        match published {
            Ok(p) => {
                let (v, ok) = verdict(r, p);
                all_ok &= ok;
                out.push(v);
            }
            Err(e) => {
                all_ok = false;
                out.push(format!("lookup failed: {e}"));
            }
        }
    }
    (out, all_ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::record_set;

    struct Table(HashMap<(String, String), Vec<String>>);

    impl Lookup for Table {
        fn lookup(&self, name: &str, rtype: &str) -> Result<Vec<String>, String> {
            if name.starts_with("broken.") {
                return Err("SERVFAIL".into());
            }
            Ok(self
                .0
                .get(&(name.to_string(), rtype.to_string()))
                .cloned()
                .unwrap_or_default())
        }
    }

    #[test]
    fn verdicts() {
        let set = record_set(
            "example.org",
            "mail.example.org",
            &["192.0.2.1".parse().unwrap()],
            &[],
            &[Rec::txt(
                "s._domainkey.example.org",
                "v=DKIM1; k=ed25519; p=AAAA",
                String::new(),
            )],
        );
        let mut t = HashMap::new();
        let mut put = |n: &str, ty: &str, v: &[&str]| {
            t.insert(
                (n.to_string(), ty.to_string()),
                v.iter().map(|s| s.to_string()).collect(),
            );
        };
        put("example.org", "MX", &["10 MAIL.example.org"]);
        put("mail.example.org", "A", &["192.0.2.9"]);
        put(
            "example.org",
            "TXT",
            &["google-site-verification=x", "v=spf1 mx -all"],
        );
        put("mail.example.org", "TXT", &["v=spf1 ip4:192.0.2.1 -all"]);
        put("_mta-sts.example.org", "TXT", &["v=STSv1; id=20260101"]);
        put(
            "s._domainkey.example.org",
            "TXT",
            &["v=DKIM1; k=ed25519; p=AAAA"],
        );
        put(
            "_imaps._tcp.example.org",
            "SRV",
            &["0 1 993 mail.example.org"],
        );
        let (v, ok) = check(&set, &Table(t));
        assert!(!ok);
        let at = |name: &str, ty: &str| {
            let i = set
                .iter()
                .position(|r| r.name == name && r.rtype == ty)
                .unwrap();
            v[i].clone()
        };
        assert_eq!(at("example.org", "MX"), "ok");
        assert_eq!(
            at("mail.example.org", "A"),
            "DIFFERENT: published 192.0.2.9"
        );
        assert_eq!(at("example.org", "TXT"), "ok");
        assert_eq!(
            at("mail.example.org", "TXT"),
            "DIFFERENT: published \"v=spf1 ip4:192.0.2.1 -all\""
        );
        assert_eq!(at("_dmarc.example.org", "TXT"), "MISSING");
        assert_eq!(at("_mta-sts.example.org", "TXT"), "ok");
        assert_eq!(at("s._domainkey.example.org", "TXT"), "ok");
        assert_eq!(at("_imaps._tcp.example.org", "SRV"), "ok");
        assert_eq!(at("_pop3._tcp.example.org", "SRV"), "MISSING");
    }

    #[test]
    fn failures_and_placeholders() {
        let set = record_set("broken.example", "broken.example", &[], &[], &[]);
        let (v, ok) = check(&set, &Table(HashMap::new()));
        assert!(!ok);
        assert_eq!(v[0], "lookup failed: SERVFAIL");
        assert!(v.iter().any(|x| x.starts_with("not checked")));
    }

    #[test]
    fn nameserver_addresses() {
        assert_eq!(
            nameserver(Some("127.0.0.1".into())).unwrap(),
            "127.0.0.1:53".parse().unwrap()
        );
        assert_eq!(
            nameserver(Some("127.0.0.1:5353".into())).unwrap(),
            "127.0.0.1:5353".parse().unwrap()
        );
        assert_eq!(
            nameserver(Some("[::1]:54".into())).unwrap(),
            "[::1]:54".parse().unwrap()
        );
        assert_eq!(
            nameserver(Some("::1".into())).unwrap(),
            "[::1]:53".parse().unwrap()
        );
        assert!(nameserver(Some("resolver.example".into())).is_err());
    }
}
