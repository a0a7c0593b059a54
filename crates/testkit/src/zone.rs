//! A nameserver on loopback for the tests (UDP and TCP), answering TXT,
//! A, AAAA, PTR and MX from a table; names in the table with no record of
//! the asked type get NODATA, unknown names NXDOMAIN, and "silent" names
//! no answer at all. Answers too long for UDP come back truncated, so the
//! resolver asks again over TCP (the 64 KB TXT record). facteur-trust's
//! checks and smtpd's trust tests ask it (RFC 1035 wire format through
//! hickory's codec).
//!
//! ```ignore
//! let dns = DnsServer::start(Zone::default().txt("a.test", "v=spf1 -all")).await;
//! // point a resolver at dns.addr; dropped, the server stops
//! ```

use hickory_resolver::proto::op::{Message, MessageType, ResponseCode};
use hickory_resolver::proto::rr::rdata::{A, AAAA, MX, PTR, SOA, TXT};
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};

#[derive(Debug, Clone)]
pub enum Rec {
    Txt(Vec<u8>),
    Ip(IpAddr),
    Ptr(String),
    Mx(u16, String),
}

#[derive(Debug, Default)]
pub struct Zone {
    pub records: HashMap<String, Vec<Rec>>,
    pub silent: Vec<String>,
}

fn key(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl Zone {
    pub fn txt(mut self, name: &str, text: impl AsRef<[u8]>) -> Zone {
        let v = self.records.entry(key(name)).or_default();
        v.push(Rec::Txt(text.as_ref().to_vec()));
        self
    }
    pub fn ip(mut self, name: &str, ip: &str) -> Zone {
        let v = self.records.entry(key(name)).or_default();
        v.push(Rec::Ip(ip.parse().unwrap()));
        self
    }
    pub fn ptr(mut self, ip: &str, name: &str) -> Zone {
        let ip: IpAddr = ip.parse().unwrap();
        let arpa = match ip {
            IpAddr::V4(v4) => {
                let o = v4.octets();
                format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0])
            }
            IpAddr::V6(v6) => {
                let hex: String = v6.octets().iter().map(|b| format!("{b:02x}")).collect();
                let mut labels: Vec<String> = hex.chars().rev().map(String::from).collect();
                labels.push("ip6.arpa".into());
                labels.join(".")
            }
        };
        self.records
            .entry(arpa)
            .or_default()
            .push(Rec::Ptr(name.to_string()));
        self
    }
    pub fn mx(mut self, name: &str, pref: u16, host: &str) -> Zone {
        let v = self.records.entry(key(name)).or_default();
        v.push(Rec::Mx(pref, host.to_string()));
        self
    }
    pub fn silent(mut self, name: &str) -> Zone {
        self.silent.push(key(name));
        self
    }
}

/// The answer to one query, or `None` for silence.
fn answer(zone: &Zone, query: &[u8]) -> Option<Message> {
    let q = Message::from_vec(query).ok()?;
    let question = q.queries.first()?.clone();
    let name = key(&question.name().to_ascii());
    if zone.silent.contains(&name) {
        return None;
    }
    let mut r = Message::new(q.metadata.id, MessageType::Response, q.metadata.op_code);
    r.metadata.authoritative = true;
    r.metadata.recursion_desired = q.metadata.recursion_desired;
    r.metadata.recursion_available = true;
    r.add_query(question.clone());
    // NXDOMAIN and NODATA carry the zone's SOA, as real servers' do (a
    // resolver caches the negative answer by it).
    let soa = Record::from_rdata(
        Name::from_ascii("test.").unwrap(),
        60,
        RData::SOA(SOA::new(
            Name::from_ascii("ns.test.").unwrap(),
            Name::from_ascii("hostmaster.test.").unwrap(),
            1,
            60,
            60,
            60,
            60,
        )),
    );
    let Some(recs) = zone.records.get(&name) else {
        r.metadata.response_code = ResponseCode::NXDomain;
        r.add_authority(soa);
        return Some(r);
    };
    let qname = question.name().clone();
    for rec in recs {
        let rdata = match (rec, question.query_type()) {
            (Rec::Txt(t), RecordType::TXT) => RData::TXT(TXT::from_bytes(t.chunks(255).collect())),
            (Rec::Ip(IpAddr::V4(a)), RecordType::A) => RData::A(A(*a)),
            (Rec::Ip(IpAddr::V6(a)), RecordType::AAAA) => RData::AAAA(AAAA(*a)),
            (Rec::Ptr(n), RecordType::PTR) => RData::PTR(PTR(Name::from_ascii(n).unwrap())),
            (Rec::Mx(p, h), RecordType::MX) => RData::MX(MX::new(*p, Name::from_ascii(h).unwrap())),
            _ => continue,
        };
        r.add_answer(Record::from_rdata(qname.clone(), 60, rdata));
    }
    if r.answers.is_empty() {
        r.add_authority(soa);
    }
    Some(r)
}

/// A running server; dropped, it stops.
pub struct DnsServer {
    pub addr: SocketAddr,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    pub queries: Arc<Mutex<u32>>,
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl DnsServer {
    pub async fn start(zone: Zone) -> DnsServer {
        let zone = Arc::new(zone);
        // UDP and TCP on one port: the system picks a free UDP port, whose
        // TCP twin another process may hold (tests run in parallel with
        // other suites): then another port is tried.
        let mut tries = 0;
        let (udp, addr, tcp) = loop {
            let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let addr = udp.local_addr().unwrap();
            match TcpListener::bind(addr).await {
                Ok(tcp) => break (udp, addr, tcp),
                Err(_) if tries < 50 => tries += 1,
                Err(e) => panic!("no port free for UDP and TCP both: {e}"),
            }
        };
        let queries = Arc::new(Mutex::new(0));
        let (z, n) = (Arc::clone(&zone), Arc::clone(&queries));
        let u = tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let Ok((len, peer)) = udp.recv_from(&mut buf).await else {
                    return;
                };
                *n.lock().unwrap() += 1;
                if let Some(mut m) = answer(&z, &buf[..len]) {
                    let mut bytes = m.to_vec().unwrap();
                    if bytes.len() > 1232 {
                        m.answers.clear();
                        m.metadata.truncation = true;
                        bytes = m.to_vec().unwrap();
                    }
                    let _ = udp.send_to(&bytes, peer).await;
                }
            }
        });
        let (z, n) = (Arc::clone(&zone), Arc::clone(&queries));
        let t = tokio::spawn(async move {
            loop {
                let Ok((mut c, _)) = tcp.accept().await else {
                    return;
                };
                let (z, n) = (Arc::clone(&z), Arc::clone(&n));
                tokio::spawn(async move {
                    loop {
                        let mut len = [0u8; 2];
                        if c.read_exact(&mut len).await.is_err() {
                            return;
                        }
                        let mut q = vec![0u8; u16::from_be_bytes(len) as usize];
                        if c.read_exact(&mut q).await.is_err() {
                            return;
                        }
                        *n.lock().unwrap() += 1;
                        let Some(m) = answer(&z, &q) else {
                            continue;
                        };
                        let bytes = m.to_vec().unwrap();
                        let mut out = (bytes.len() as u16).to_be_bytes().to_vec();
                        out.extend_from_slice(&bytes);
                        if c.write_all(&out).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        DnsServer {
            addr,
            tasks: vec![u, t],
            queries,
        }
    }
}
