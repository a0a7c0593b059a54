//! MTA-STS (RFC 8461): a domain publishes, over DNS and HTTPS, that its MX
//! hosts speak TLS with valid certificates; a sender that knows it refuses
//! to deliver in clear or to a host that is not on the list.
//!
//! Offers [`MtaSts`] (the fetcher and its in-memory cache, built when
//! `qmgr.mta_sts` is on), [`Policy`] with [`Policy::allows`], and the pure
//! parts: [`parse_policy`] (§3.2), [`mx_matches`] (§4.1) and
//! [`parse_http`] (the HTTP/1.1 response, bounded).
//!
//! How (§3, §5): the TXT record `_mta-sts.<domain>` (parsed by mail-auth's
//! `MtaSts`, which knows `v=STSv1; id=...`) says a policy exists and names
//! its version; the policy itself is fetched from
//! `https://mta-sts.<domain>/.well-known/mta-sts.txt` with a certificate
//! checked against `qmgr.tls_ca_file` (never a redirect, at most
//! [`MAX_POLICY`] bytes, one time-out for the whole fetch) and cached for
//! its `max_age`. While the TXT id is unchanged the cached policy is used;
//! when DNS or HTTPS fail, a cached policy that has not expired still
//! applies (§5.1: an attacker who blocks the fetch gains nothing).
//!
//! Application (`deliver.rs`): `enforce` keeps only the MX hosts the policy
//! lists and requires `verify` TLS to them (no match: the mail waits);
//! `testing` logs what enforce would refuse and delivers as usual; `none`
//! does nothing. A domain with its own `[qmgr.destinations]` TLS policy or
//! a relayhost is not looked up.
//!
//! Security: everything fetched is bounded (response size, time); the
//! HTTPS client is the same rustls configuration as `verify`.

use crate::dns::{Dns, DnsError, fqdn};
use mail_auth::common::parse::TxtRecordParser;
use mail_auth::mta_sts::MtaSts as StsRecord;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::{info, warn};

/// Largest policy body taken (RFC 8461 §3.3 suggests 64 KiB).
pub const MAX_POLICY: usize = 64 * 1024;
/// Longest `max_age` honoured (§3.2: 31557600 seconds).
pub const MAX_AGE: u64 = 31_557_600;

/// A policy's mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Enforce,
    Testing,
    None,
}

/// A parsed policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub mode: Mode,
    /// MX patterns, lower case: `mx.example.net` or `*.example.net`.
    pub mx: Vec<String>,
    pub max_age: u64,
}

impl Policy {
    /// Whether `host` is one of the policy's MX hosts.
    pub fn allows(&self, host: &str) -> bool {
        self.mx.iter().any(|p| mx_matches(p, host))
    }
}

/// §3.2: `version: STSv1`, `mode`, one or more `mx`, `max_age`; lines end
/// in CRLF or LF; unknown keys are ignored.
pub fn parse_policy(text: &str) -> Result<Policy, String> {
    let (mut version, mut mode, mut max_age) = (false, None, None);
    let mut mx = Vec::new();
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim();
        match k.trim() {
            "version" => version = v == "STSv1",
            "mode" => {
                mode = Some(match v {
                    "enforce" => Mode::Enforce,
                    "testing" => Mode::Testing,
                    "none" => Mode::None,
                    _ => return Err(format!("unknown mode {v:?}")),
                })
            }
            "max_age" => {
                max_age = Some(
                    v.parse::<u64>()
                        .map_err(|_| format!("bad max_age {v:?}"))?
                        .min(MAX_AGE),
                )
            }
            "mx" if mx.len() < 100 && !v.trim_end_matches('.').is_empty() => {
                mx.push(v.trim_end_matches('.').to_ascii_lowercase())
            }
            _ => {}
        }
    }
    if !version {
        return Err("no \"version: STSv1\"".into());
    }
    let mode = mode.ok_or("no mode")?;
    let max_age = max_age.ok_or("no max_age")?;
    if mx.is_empty() && mode != Mode::None {
        return Err("no mx".into());
    }
    Ok(Policy { mode, mx, max_age })
}

/// §4.1: an exact name, or `*.` matching exactly one leftmost label.
pub fn mx_matches(pattern: &str, host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    match pattern.strip_prefix("*.") {
        Some(suffix) => host
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix),
        None => host == pattern,
    }
}

/// The body of an HTTP/1.1 200 response (Content-Length, chunked, or to
/// the end). Anything else — a redirect included (§3.3) — is an error.
pub fn parse_http(resp: &[u8]) -> Result<Vec<u8>, String> {
    let end = memchr::memmem::find(resp, b"\r\n\r\n").ok_or("no complete HTTP header")?;
    let head = String::from_utf8_lossy(&resp[..end]);
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or("");
    let code = status.split_whitespace().nth(1).unwrap_or("");
    if code != "200" {
        return Err(format!(
            "HTTP status {status:?} (redirects are not followed)"
        ));
    }
    let mut length = None;
    let mut chunked = false;
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
            if k == "content-length" {
                length = v.parse::<usize>().ok();
            } else if k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked") {
                chunked = true;
            }
        }
    }
    let body = &resp[end + 4..];
    if chunked {
        let mut out = Vec::new();
        let mut rest = body;
        loop {
            let nl = memchr::memmem::find(rest, b"\r\n").ok_or("truncated chunk")?;
            let size_text = String::from_utf8_lossy(&rest[..nl]);
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| "bad chunk size")?;
            rest = &rest[nl + 2..];
            if size == 0 {
                return Ok(out);
            }
            if size > MAX_POLICY || rest.len() < size {
                return Err("truncated or oversized chunk".into());
            }
            out.extend_from_slice(&rest[..size]);
            rest = rest.get(size + 2..).unwrap_or(&[]);
        }
    }
    match length {
        Some(n) if body.len() >= n => Ok(body[..n].to_vec()),
        Some(_) => Err("truncated body".into()),
        None => Ok(body.to_vec()),
    }
}

struct Cached {
    id: String,
    policy: Policy,
    until: Instant,
}

/// The policy fetcher and cache.
pub struct MtaSts {
    cache: Mutex<HashMap<String, Cached>>,
    tls: Arc<rustls::ClientConfig>,
    /// 443; another port only in tests (`qmgr.mta_sts_https_port`).
    port: u16,
    timeout: Duration,
}

impl MtaSts {
    pub fn new(tls: Arc<rustls::ClientConfig>, port: u16, timeout: Duration) -> MtaSts {
        MtaSts {
            cache: Mutex::new(HashMap::new()),
            tls,
            port,
            timeout,
        }
    }

    fn cached(&self, domain: &str, id: Option<&str>) -> Option<Policy> {
        let c = self.cache.lock().ok()?;
        let e = c.get(domain)?;
        (e.until > Instant::now() && id.is_none_or(|i| i == e.id)).then(|| e.policy.clone())
    }

    /// The policy of `domain`, if it has one (see the module header).
    pub async fn policy(&self, dns: &dyn Dns, queue_id: &str, domain: &str) -> Option<Policy> {
        let domain = domain.to_ascii_lowercase();
        let id = match dns.txt(&fqdn(&format!("_mta-sts.{domain}"))).await {
            Ok(records) => {
                let sts: Vec<&Vec<u8>> = records
                    .iter()
                    .filter(|r| r.starts_with(b"v=STSv1"))
                    .collect();
                match sts.as_slice() {
                    [one] => StsRecord::parse(one).ok().map(|r| r.id),
                    // None, or several (§3.1: then there is no policy).
                    _ => None,
                }
            }
            Err(DnsError::NoRecords { .. }) => None,
            Err(DnsError::Temporary(e)) => {
                warn!(queue_id = %queue_id, domain = %domain, error = %e, "MTA-STS TXT lookup failed; using the cached policy if any");
                return self.cached(&domain, None);
            }
        };
        let Some(id) = id else {
            return self.cached(&domain, None);
        };
        if let Some(p) = self.cached(&domain, Some(&id)) {
            return Some(p);
        }
        match tokio::time::timeout(self.timeout, self.fetch(dns, &domain)).await {
            Ok(Ok(policy)) => {
                info!(queue_id = %queue_id, domain = %domain, id = %id, mode = ?policy.mode, mx = %policy.mx.join(","), max_age = policy.max_age, "MTA-STS policy fetched");
                if let Ok(mut c) = self.cache.lock() {
                    c.insert(
                        domain.clone(),
                        Cached {
                            id,
                            policy: policy.clone(),
                            until: Instant::now() + Duration::from_secs(policy.max_age),
                        },
                    );
                }
                Some(policy)
            }
            Ok(Err(e)) => {
                warn!(queue_id = %queue_id, domain = %domain, error = %e, "MTA-STS policy fetch failed; using the cached policy if any");
                self.cached(&domain, None)
            }
            Err(_) => {
                warn!(queue_id = %queue_id, domain = %domain, "MTA-STS policy fetch timed out; using the cached policy if any");
                self.cached(&domain, None)
            }
        }
    }

    async fn fetch(&self, dns: &dyn Dns, domain: &str) -> Result<Policy, String> {
        let host = format!("mta-sts.{domain}");
        let addrs = crate::dns::host_addrs(dns, &host).await?;
        let mut last = String::from("no address");
        for ip in addrs {
            match self.get(&host, SocketAddr::new(ip, self.port)).await {
                Ok(body) => {
                    let text = String::from_utf8(body).map_err(|_| "policy is not UTF-8")?;
                    return parse_policy(&text);
                }
                Err(e) => last = format!("{host}[{ip}]: {e}"),
            }
        }
        Err(last)
    }

    async fn get(&self, host: &str, addr: SocketAddr) -> Result<Vec<u8>, String> {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| e.to_string())?;
        let name =
            rustls::pki_types::ServerName::try_from(host.to_string()).map_err(|e| e.to_string())?;
        let mut tls = tokio_rustls::TlsConnector::from(Arc::clone(&self.tls))
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        let req = format!(
            "GET /.well-known/mta-sts.txt HTTP/1.1\r\nHost: {host}\r\nUser-Agent: facteur\r\nConnection: close\r\n\r\n"
        );
        tls.write_all(req.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut resp = Vec::new();
        // Header + body + chunk framing, bounded.
        let limit = (MAX_POLICY + 16 * 1024) as u64;
        match (&mut tls).take(limit + 1).read_to_end(&mut resp).await {
            Ok(_) => {}
            // Many servers end TLS without close_notify; what was read counts.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {}
            Err(e) => return Err(e.to_string()),
        }
        if resp.len() as u64 > limit {
            return Err("response too large".into());
        }
        let body = parse_http(&resp)?;
        if body.len() > MAX_POLICY {
            return Err("policy too large".into());
        }
        Ok(body)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn an_mx_of_dots_is_no_pattern() {
        // Found by fuzz/fuzz_targets/remote_input.rs: `mx: .` became an
        // empty pattern, which matched an empty host name.
        let p = parse_policy("version: STSv1\nmode: enforce\nmx: .\nmx: ..\nmax_age: 60\n");
        assert_eq!(p, Err("no mx".into()));
        let p = parse_policy("version: STSv1\nmode: testing\nmx: .\nmx: a.test.\nmax_age: 60\n")
            .unwrap();
        assert_eq!(p.mx, ["a.test"]);
        assert!(!p.allows("") && !p.allows("."));
    }

    #[test]
    fn rfc8461_policy_example() {
        let p = parse_policy(
            "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmx: backupmx.example.com\r\nmax_age: 604800\r\n",
        )
        .unwrap();
        assert_eq!(p.mode, Mode::Enforce);
        assert_eq!(p.max_age, 604_800);
        assert!(p.allows("mail.example.com") && p.allows("MX1.example.net."));
        assert!(!p.allows("a.b.example.net") && !p.allows("example.net"));
        assert!(!p.allows("evil.example.com"));
        for bad in [
            "mode: enforce\nmx: a\nmax_age: 1\n",
            "version: STSv1\nmode: enforce\nmax_age: 1\n",
            "version: STSv1\nmode: sometimes\nmx: a\nmax_age: 1\n",
            "version: STSv1\nmode: testing\nmx: a\n",
        ] {
            assert!(parse_policy(bad).is_err(), "{bad}");
        }
        let p = parse_policy("version: STSv1\nmode: none\nmax_age: 99999999999\n").unwrap();
        assert_eq!((p.mode, p.max_age), (Mode::None, MAX_AGE));
    }

    #[test]
    fn http_responses() {
        assert_eq!(
            parse_http(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcdef").unwrap(),
            b"abc"
        );
        assert_eq!(
            parse_http(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
                .unwrap(),
            b"abcde"
        );
        assert_eq!(parse_http(b"HTTP/1.0 200 OK\r\n\r\nall").unwrap(), b"all");
        assert!(parse_http(b"HTTP/1.1 301 Moved\r\nLocation: x\r\n\r\n").is_err());
        assert!(parse_http(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc").is_err());
        assert!(
            parse_http(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n").is_err()
        );
        assert!(parse_http(b"garbage").is_err());
    }
}
