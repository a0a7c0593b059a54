//! The little of HTTP/1.1 rspamd needs (RFC 9112): one POST with a
//! Content-Length, `Connection: close`, and the reply read to its end
//! within a bound. Written here rather than taken from an HTTP crate
//! (hyper and its stack) because this is all of it: one request shape to
//! one local daemon, no TLS, no redirects, no pooling.

/// Most bytes of a reply read.
pub const MAX_REPLY: usize = 4 * 1024 * 1024;

/// A request's head: method line, headers, the empty line. Header values
/// lose any control character (they come from the SMTP session).
pub fn request_head(path: &str, headers: &[(&str, String)], content_length: u64) -> Vec<u8> {
    let mut h = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {content_length}\r\n"
    );
    for (name, value) in headers {
        let clean: String = value.chars().filter(|c| !c.is_control()).collect();
        h.push_str(name);
        h.push_str(": ");
        h.push_str(&clean);
        h.push_str("\r\n");
    }
    h.push_str("\r\n");
    h.into_bytes()
}

/// A reply: the status code and the body (de-chunked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Parses a whole reply (the connection closed after it).
pub fn parse_reply(raw: &[u8]) -> Result<Reply, String> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of the header section")?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| "header section is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let (version, code) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    if !version.starts_with("HTTP/1.") {
        return Err(format!("not an HTTP/1 reply: {status_line:?}"));
    }
    let status: u16 = code
        .parse()
        .map_err(|_| format!("bad status line {status_line:?}"))?;
    let (mut length, mut chunked) = (None, false);
    for l in lines {
        let Some((name, value)) = l.split_once(':') else {
            return Err(format!("bad header line {l:?}"));
        };
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.parse::<usize>().map_err(|_| "bad Content-Length")?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        }
    }
    let rest = &raw[end + 4..];
    let body = if chunked {
        dechunk(rest)?
    } else if let Some(n) = length {
        rest.get(..n)
            .ok_or("reply shorter than its Content-Length")?
            .to_vec()
    } else {
        rest.to_vec()
    };
    Ok(Reply { status, body })
}

fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("a chunk without its size line")?;
        let size_text = std::str::from_utf8(&rest[..eol]).map_err(|_| "bad chunk size")?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| "bad chunk size")?;
        rest = &rest[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        let chunk = rest.get(..size).ok_or("a chunk cut short")?;
        out.extend_from_slice(chunk);
        rest = rest.get(size + 2..).ok_or("a chunk cut short")?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies() {
        let r = parse_reply(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nServer: rspamd\r\n\r\n{}xyz")
            .unwrap();
        assert_eq!((r.status, &r.body[..]), (200, &b"{}xy"[..]));
        let r = parse_reply(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x\r\nde\r\n0\r\n\r\n").unwrap();
        assert_eq!(r.body, b"abcde");
        let r = parse_reply(b"HTTP/1.0 500 Internal\r\n\r\noops").unwrap();
        assert_eq!((r.status, &r.body[..]), (500, &b"oops"[..]));
        for bad in [
            &b""[..],
            b"garbage\r\n\r\n",
            b"HTTP/1.1 2x OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nab",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        ] {
            assert!(
                parse_reply(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn request_heads_lose_control_characters() {
        let h = request_head("/checkv2", &[("Helo", "evil\r\nX-Injected: 1".into())], 10);
        let text = String::from_utf8(h).unwrap();
        assert!(text.contains("Helo: evilX-Injected: 1\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\n") && text.contains("Content-Length: 10\r\n"));
    }
}
