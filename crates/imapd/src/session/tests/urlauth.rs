//! URLAUTH (RFC 4467) and URLAUTH=BINARY (RFC 5524): Alice makes URLs of
//! her messages, Bob fetches what they allow him.

use super::*;

/// The one URL of a `* GENURLAUTH url` reply (checked OK).
async fn authorize(c: &mut Client<DuplexStream>, rump: &str) -> String {
    let lines = c.cmd("g", &format!("GENURLAUTH \"{rump}\" INTERNAL")).await;
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[1].starts_with("g OK"), "{lines:?}");
    let url = lines[0]
        .strip_prefix("* GENURLAUTH ")
        .unwrap_or_else(|| panic!("{lines:?}"));
    assert!(url.starts_with(rump), "{url}");
    let token = &url[rump.len()..];
    assert!(
        token.starts_with(":internal:") && token.len() == 10 + 64,
        "{url}"
    );
    url.to_string()
}

const MESSAGE: &str = "Subject: parts\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nfirst\r\n--b\r\nContent-Type: text/x-mine\r\nContent-Transfer-Encoding: base64\r\n\r\naGVsbG8gd29ybGQ=\r\n--b--\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn urls_fetched_by_whom_they_allow_until_the_key_is_reset() {
    let f = fixture();
    let (mut a, _sa) = f.login("alice").await;
    let (mut b, _sb) = f.login("bob").await;
    a.run(&format!(
        "C: p APPEND INBOX {{{}+}}\nC: {}\nC:\nS: p OK [APPENDUID * 4] APPEND completed\n",
        MESSAGE.len(),
        MESSAGE.trim_end_matches("\r\n").replace("\r\n", "\nC: ")
    ))
    .await;
    let base = "imap://alice@example.test/INBOX/;uid=4";
    let for_bob = authorize(&mut a, &format!("{base};urlauth=user+bob@example.test")).await;
    let for_all = authorize(&mut a, &format!("{base}/;section=2;urlauth=authuser")).await;
    let whole = authorize(&mut a, &format!("{base};urlauth=authuser")).await;
    let expired = authorize(
        &mut a,
        &format!("{base};expire=2020-01-01T00:00:00Z;urlauth=anonymous"),
    )
    .await;
    let submit = authorize(&mut a, &format!("{base};urlauth=submit+bob@example.test")).await;
    // Alice is not Bob: nothing for her
    a.run(&format!(
        "C: f URLFETCH {for_bob}\nS: * URLFETCH {for_bob} NIL\nS: f OK URLFETCH completed\n"
    ))
    .await;
    // Bob gets the message; a changed token, an expired URL and a
    // submission URL give nothing
    let mut forged = for_bob.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == '0' { '1' } else { '0' });
    b.run(&format!(
        "C: f URLFETCH \"{for_bob}\" \"{forged}\" \"{expired}\" \"{submit}\"\n\
         S: * URLFETCH {for_bob} {{{}}}\n\
         S: Subject: parts\n\
         S*: --b--\n\
         S:  {forged} NIL {expired} NIL {submit} NIL\n\
         S: f OK URLFETCH completed\n",
        MESSAGE.len()
    ))
    .await;
    // URLAUTH=BINARY: the part decoded, and its structure
    b.run(&format!(
        "C: f URLFETCH (\"{for_all}\" BINARY BODYPARTSTRUCTURE) (\"{for_all}\" BODY) \"{for_all}\"\n\
         S: * URLFETCH {for_all} (BODYPARTSTRUCTURE (\"TEXT\" \"X-MINE\" ** \"7BIT\" 11 0 NIL NIL NIL NIL)) (BINARY {{11}}\n\
         S: hello world) {for_all} (BODY {{16}}\n\
         S: aGVsbG8gd29ybGQ=) {for_all} {{16}}\n\
         S: aGVsbG8gd29ybGQ=\n\
         S: f OK URLFETCH completed\n"
    ))
    .await;
    // CATENATE takes a URLAUTH URL of another user's message
    b.run(&format!(
        "C: c APPEND INBOX CATENATE (TEXT {{17+}}\nC: Subject: copy\nC: \nC:  URL \"{for_all}\")\n\
         S: c OK [APPENDUID * *] APPEND completed\n"
    ))
    .await;
    // what GENURLAUTH refuses
    a.run(
        r#"
        C: n1 GENURLAUTH "imap://alice@example.test/INBOX/;uid=4;urlauth=anonymous" XSECRET
        S: n1 NO Unsupported URLAUTH mechanism "XSECRET" (only INTERNAL)
        C: n2 GENURLAUTH "imap://bob@example.test/INBOX/;uid=1;urlauth=anonymous" INTERNAL
        S: n2 NO A URL of another user's mailbox cannot be authorized
        C: n3 GENURLAUTH "imap://alice@example.test/Nowhere/;uid=1;urlauth=anonymous" INTERNAL
        S: n3 NO [NONEXISTENT] No such mailbox
        C: n4 GENURLAUTH "imap://alice@example.test/INBOX/;uid=4" INTERNAL
        S: n4 NO The URL has no URLAUTH access identifier
        C: n5 GENURLAUTH "/INBOX/;uid=4;urlauth=anonymous" INTERNAL
        S: n5 NO Invalid URL: a URLAUTH URL names its user
        C: r1 RESETKEY Nowhere
        S: r1 NO [NONEXISTENT] No such mailbox
        C: r2 RESETKEY INBOX XSECRET
        S: r2 NO Unsupported URLAUTH mechanism "XSECRET" (only INTERNAL)
        C: r3 RESETKEY INBOX INTERNAL
        S: r3 OK RESETKEY completed
        "#,
    )
    .await;
    // the key is new: the old URLs give nothing, new ones work
    b.run(&format!(
        "C: f URLFETCH {for_bob} {whole}\nS: * URLFETCH {for_bob} NIL {whole} NIL\nS: f OK URLFETCH completed\n"
    ))
    .await;
    let again = authorize(&mut a, &format!("{base};urlauth=authuser")).await;
    assert_ne!(again, whole);
    b.run(&format!(
        "C: f URLFETCH {again}\nS: * URLFETCH {again} {{{}}}\nS*: --b--\nS: \nS: f OK URLFETCH completed\n",
        MESSAGE.len()
    ))
    .await;
    a.run("C: r RESETKEY\nS: r OK RESETKEY completed\n").await;
    // a bounded answer: at most 64 URLs at once
    let many = vec!["x"; 65].join(" ");
    b.run(&format!(
        "C: m URLFETCH {many}\nS: m NO [LIMIT] At most 64 URLs in one URLFETCH\n"
    ))
    .await;
    b.run(&format!(
        "C: f URLFETCH {again}\nS: * URLFETCH {again} NIL\nS: f OK URLFETCH completed\n"
    ))
    .await;
}
