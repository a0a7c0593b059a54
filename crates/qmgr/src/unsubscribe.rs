//! One-click unsubscription from facteur's mailing lists (RFC 8058):
//! each member's copy carries `List-Unsubscribe: <URL/list/member/token>`
//! and `List-Unsubscribe-Post: List-Unsubscribe=One-Click`; a mail program
//! (or the member's provider) POSTs to that URL and the member is removed.
//! The token is an HMAC of the list and the member under the list's
//! secret, so only that member's own copy can do it.
//!
//! Served by facteur-qmgr on `[lists] unsubscribe_listen` (plain HTTP,
//! loopback; a reverse proxy gives it the public HTTPS address of
//! `[lists] unsubscribe_url`), with facteur-metrics' small bounded HTTP
//! server. GET shows a page with a button (RFC 8058 §3.2: a GET must not
//! unsubscribe, link checkers follow links); POST unsubscribes.

use facteur_lists::{ListStore, decode_segment};
use facteur_metrics::response;
use tracing::info;

fn html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The reply to one request head (pure but for the store).
pub fn answer(store: &ListStore, head: &[u8]) -> Vec<u8> {
    let first = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let first = String::from_utf8_lossy(first);
    let mut parts = first.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let page = |status: &str, text: &str| {
        response(
            status,
            "text/html; charset=utf-8",
            &format!("<!DOCTYPE html><html><body><p>{text}</p></body></html>\n"),
            method == "HEAD",
        )
    };
    let [.., list, member, token] = segs.as_slice() else {
        return page("404 Not Found", "No such page.");
    };
    let (Some(list), Some(member)) = (decode_segment(list), decode_segment(member)) else {
        return page("404 Not Found", "No such page.");
    };
    match method {
        "GET" | "HEAD" => page(
            "200 OK",
            &format!(
                "Unsubscribe {} from {}?</p><form method=\"post\" action=\"{}\"><button type=\"submit\" name=\"List-Unsubscribe\" value=\"One-Click\">Unsubscribe</button></form><p>",
                html(&member),
                html(&list),
                html(target),
            ),
        ),
        "POST" => match store.unsubscribe(&list, &member, token) {
            Ok(true) => {
                info!(list = %list, member = %member, "list member unsubscribed (one-click)");
                page(
                    "200 OK",
                    &format!("{} is unsubscribed from {}.", html(&member), html(&list)),
                )
            }
            Ok(false) => page(
                "403 Forbidden",
                "This link is not valid, or was used already.",
            ),
            Err(facteur_lists::ListError::NoList(_) | facteur_lists::ListError::Address(_)) => {
                page("404 Not Found", "No such list.")
            }
            Err(e) => {
                tracing::warn!(error = %e, "one-click unsubscription failed");
                page("503 Service Unavailable", "Please try again later.")
            }
        },
        _ => response(
            "405 Method Not Allowed",
            "text/plain",
            "GET or POST\n",
            false,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn post_unsubscribes_get_only_asks() {
        let d = tempfile::tempdir().unwrap();
        let s = ListStore::open(&d.path().join("d.sqlite")).unwrap();
        s.create("team@example.org", "").unwrap();
        s.add(
            "team@example.org",
            &["a+x@y.test".into(), "b@y.test".into()],
        )
        .unwrap();
        let url = facteur_lists::unsubscribe_url(
            "https://lists.example.org/unsubscribe",
            "team@example.org",
            "a+x@y.test",
            &s.token("team@example.org", "a+x@y.test").unwrap(),
        );
        let path = url.strip_prefix("https://lists.example.org").unwrap();
        let get = String::from_utf8(answer(
            &s,
            format!("GET {path} HTTP/1.1\r\n\r\n").as_bytes(),
        ))
        .unwrap();
        assert!(
            get.starts_with("HTTP/1.1 200") && get.contains("method=\"post\""),
            "{get}"
        );
        assert_eq!(s.members("team@example.org").unwrap().len(), 2);
        // Someone else's token does not work.
        let other = s.token("team@example.org", "b@y.test").unwrap();
        let forged =
            format!("POST /unsubscribe/team@example.org/a+x@y.test/{other} HTTP/1.1\r\n\r\n");
        assert!(
            String::from_utf8(answer(&s, forged.as_bytes()))
                .unwrap()
                .starts_with("HTTP/1.1 403")
        );
        let post = String::from_utf8(answer(
            &s,
            format!("POST {path} HTTP/1.1\r\n\r\nList-Unsubscribe=One-Click").as_bytes(),
        ))
        .unwrap();
        assert!(post.starts_with("HTTP/1.1 200"), "{post}");
        let left: Vec<String> = s
            .members("team@example.org")
            .unwrap()
            .into_iter()
            .map(|m| m.address)
            .collect();
        assert_eq!(left, ["b@y.test"]);
        // Used already.
        let again = String::from_utf8(answer(
            &s,
            format!("POST {path} HTTP/1.1\r\n\r\n").as_bytes(),
        ))
        .unwrap();
        assert!(again.starts_with("HTTP/1.1 403"));
        assert!(
            String::from_utf8(answer(&s, b"POST /x HTTP/1.1\r\n\r\n"))
                .unwrap()
                .starts_with("HTTP/1.1 404")
        );
        assert!(
            String::from_utf8(answer(
                &s,
                format!("DELETE {path} HTTP/1.1\r\n\r\n").as_bytes()
            ))
            .unwrap()
            .starts_with("HTTP/1.1 405")
        );
    }
}
