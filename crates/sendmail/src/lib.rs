//! facteur-sendmail: the sendmail-compatible command (`sendmail`, also
//! `mailq` and `newaliases` by the name it is called with) that cron,
//! logwatch, Debian maintainer scripts and mail libraries call.
//!
//! Layout: [`args`] parses the sendmail command line; [`message`] reads the
//! message (LF or CRLF, dot handling), splits the header section, extracts
//! recipients for `-t`, adds From:/Date:/Message-ID:; [`smtp`] is `-bs`;
//! [`mailq`] is `-bp`. [`run`] ties them to the configuration and the spool.
//!
//! What it guarantees: a message is queued in `spool/maildrop/` through
//! facteur-spool (complete and fsynced before the command exits 0), so it
//! works when no daemon runs; then the queue manager is woken (a hint only).
//! Bcc: never stays in a queued message. Failures exit with sysexits.h codes
//! and a one-line reason on stderr.
//!
//! Security: runs as the invoking user, unprivileged; writes only into the
//! world-writable `maildrop/` (mode 03733). The envelope records the Unix
//! user (local_user), but qmgr must trust the file owner instead.
//!
//! Standards: RFC 5322 (header fields, dates, address lists), RFC 5321
//! (`-bs`), RFC 3461 (`-N`, `-R`, `-V`), sysexits.h.

pub mod args;
pub mod mailq;
pub mod message;
pub mod smtp;

use args::{Mode, Options};
use facteur_mail::dsn::{BodyType, Notify, Ret};
use facteur_spool::{Envelope, QueueName, Recipient, Spool};
use message::Message;
use std::ffi::OsString;
use std::io::{BufRead, Read, Write};
use std::path::PathBuf;

/// Exit codes (sysexits.h).
pub mod exit {
    pub const OK: u8 = 0;
    pub const USAGE: u8 = 64;
    pub const DATAERR: u8 = 65;
    pub const NOUSER: u8 = 67;
    pub const SOFTWARE: u8 = 70;
    pub const OSERR: u8 = 71;
    pub const CANTCREAT: u8 = 73;
    pub const IOERR: u8 = 74;
    pub const TEMPFAIL: u8 = 75;
    pub const NOPERM: u8 = 77;
    pub const CONFIG: u8 = 78;
}

/// Why the command failed: an exit code and a reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

fn fail(code: u8, message: impl Into<String>) -> Failure {
    Failure {
        code,
        message: message.into(),
    }
}

/// Checks an address and completes it: `<a@b>` -> `a@b` (domain lower-case),
/// `user` -> `user@hostname`.
pub fn normalize_address(s: &str, hostname: &str) -> Result<String, String> {
    facteur_mail::qualify(s, hostname)
        .map(|a| a.to_string())
        .map_err(|e| format!("{:?}: {e}", s.trim()))
}

/// What the command needs from its surroundings.
#[derive(Debug, Clone)]
pub struct Context {
    pub spool_dir: PathBuf,
    pub qmgr_socket: PathBuf,
    pub hostname: String,
    /// The invoking Unix user's login name.
    pub user: String,
    /// Their full name (GECOS), for an added From:.
    pub user_full_name: Option<String>,
    /// Largest message accepted (0 = no limit).
    pub max_size: u64,
}

impl Context {
    /// For the invoking user, as the configuration says.
    pub fn from_config(cfg: &facteur_config::Config) -> Context {
        let (user, user_full_name) = invoking_user();
        Context {
            spool_dir: cfg.paths.spool_dir.clone(),
            qmgr_socket: cfg.qmgr_socket(),
            hostname: cfg.hostname(),
            user,
            user_full_name,
            max_size: cfg.smtpd.max_message_size.0,
        }
    }
}

/// The invoking user's name and full name (from the password database).
fn invoking_user() -> (String, Option<String>) {
    let uid = nix::unistd::getuid();
    match nix::unistd::User::from_uid(uid) {
        Ok(Some(u)) => {
            let gecos = u.gecos.to_string_lossy();
            let full = gecos.split(',').next().unwrap_or("").trim().to_string();
            (u.name, Some(full).filter(|f| !f.is_empty()))
        }
        _ => (uid.to_string(), None),
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// One message to queue.
#[derive(Debug, Clone)]
pub struct Submission {
    /// "" = null reverse-path.
    pub sender: String,
    pub recipients: Vec<Recipient>,
    pub ret: Option<Ret>,
    pub envid: Option<String>,
    pub smtputf8: bool,
    pub message: Message,
    /// `-F`: the full name for an added From:.
    pub full_name: Option<String>,
}

/// Completes the header section (From:, Date:, Message-ID: when missing;
/// Bcc: removed) and queues the message in maildrop/; returns the queue id.
pub fn enqueue(ctx: &Context, mut sub: Submission) -> Result<String, Failure> {
    let cant = |e: &dyn std::fmt::Display| {
        fail(
            exit::CANTCREAT,
            format!("cannot write the queue ({}): {e}", ctx.spool_dir.display()),
        )
    };
    let spool = Spool::open(&ctx.spool_dir).map_err(|e| cant(&e))?;
    let msg = &mut sub.message;
    msg.remove("bcc");
    let eight_bit = !msg.body.is_ascii() || msg.has_8bit_headers();
    let smtputf8 = sub.smtputf8
        || !sub.sender.is_ascii()
        || sub.recipients.iter().any(|r| !r.address.is_ascii())
        || msg.has_8bit_headers();
    let arrival = now();
    let env = Envelope {
        sender: sub.sender.clone(),
        recipients: sub.recipients,
        ret: sub.ret,
        envid: sub.envid,
        body: if eight_bit {
            BodyType::EightBitMime
        } else {
            BodyType::SevenBit
        },
        smtputf8,
        protocol: Some("sendmail".into()),
        local_user: Some(ctx.user.clone()),
        arrival,
        ..Envelope::default()
    };
    let mut w = spool
        .create(QueueName::Maildrop, &env)
        .map_err(|e| cant(&e))?;
    let id = w.queue_id().to_string();
    if !msg.has("from") {
        let addr = if sub.sender.is_empty() {
            format!("{}@{}", ctx.user, ctx.hostname)
        } else {
            sub.sender.clone()
        };
        let name = sub.full_name.as_deref().or(ctx.user_full_name.as_deref());
        msg.add("From", &message::from_value(name, &addr));
    }
    if !msg.has("date") {
        msg.add("Date", &facteur_util::date::rfc5322(arrival));
    }
    if !msg.has("message-id") {
        msg.add("Message-ID", &format!("<{id}@{}>", ctx.hostname));
    }
    w.write_all(&msg.to_bytes()).map_err(|e| cant(&e))?;
    let id = w.commit().map_err(|e| cant(&e))?;
    facteur_spool::wake_qmgr(&ctx.qmgr_socket);
    Ok(id)
}

fn parse_notify(s: &str) -> Result<Notify, Failure> {
    Notify::parse(s).ok_or_else(|| {
        fail(
            exit::USAGE,
            format!("-N {s}: not never, or a list of success, failure, delay"),
        )
    })
}

/// `-bm`: reads the message from `input` and queues it.
pub fn deliver(ctx: &Context, opts: &Options, input: impl BufRead) -> Result<String, Failure> {
    let raw = message::read_message(input, opts.ignore_dots, ctx.max_size).map_err(|e| {
        if e.kind() == std::io::ErrorKind::FileTooLarge {
            fail(exit::DATAERR, e.to_string())
        } else {
            fail(exit::IOERR, format!("reading the message: {e}"))
        }
    })?;
    let message = Message::parse(&raw);
    drop(raw);
    let mut wanted: Vec<String> = opts
        .recipients
        .iter()
        .flat_map(|r| message::parse_address_list(r))
        .collect();
    if opts.extract_recipients {
        wanted.extend(message.header_recipients());
    }
    let notify = opts
        .notify
        .as_deref()
        .map(parse_notify)
        .transpose()?
        .unwrap_or_default();
    let mut recipients: Vec<Recipient> = Vec::new();
    for r in wanted {
        let address = normalize_address(&r, &ctx.hostname)
            .map_err(|e| fail(exit::NOUSER, format!("bad recipient address {e}")))?;
        if !recipients
            .iter()
            .any(|x| x.address.eq_ignore_ascii_case(&address))
        {
            recipients.push(Recipient {
                address,
                notify,
                ..Recipient::default()
            });
        }
    }
    if recipients.is_empty() {
        return Err(fail(exit::USAGE, "no recipient addresses"));
    }
    let sender = match opts.sender.as_deref().map(str::trim) {
        Some("" | "<>") => String::new(),
        Some(s) => normalize_address(s, &ctx.hostname)
            .map_err(|e| fail(exit::NOUSER, format!("bad sender address {e}")))?,
        None => normalize_address(&ctx.user, &ctx.hostname)
            .map_err(|e| fail(exit::NOUSER, format!("cannot make a sender address: {e}")))?,
    };
    let ret = match opts.ret.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None => None,
        Some("full") => Some(Ret::Full),
        Some("hdrs") => Some(Ret::Hdrs),
        Some(r) => return Err(fail(exit::USAGE, format!("-R {r}: not full or hdrs"))),
    };
    enqueue(
        ctx,
        Submission {
            sender,
            recipients,
            ret,
            envid: opts.envid.clone(),
            smtputf8: false,
            message,
            full_name: opts.full_name.clone(),
        },
    )
}

/// `-bs`: an SMTP session on `input`/`output`.
pub fn smtp_session(
    ctx: &Context,
    input: impl Read + Send + 'static,
    output: impl Write + Unpin,
) -> std::io::Result<()> {
    let normalize = |a: &str| normalize_address(a, &ctx.hostname);
    let submit = |t: smtp::Transaction| {
        enqueue(
            ctx,
            Submission {
                sender: t.sender,
                recipients: t.recipients,
                ret: t.ret,
                envid: t.envid,
                smtputf8: t.smtputf8,
                message: Message::parse(&t.data),
                full_name: None,
            },
        )
        .map_err(|f| f.message)
    };
    smtp::session(
        input,
        output,
        &ctx.hostname,
        ctx.max_size,
        &normalize,
        &submit,
    )
}

/// Standard input as a file of its own (a duplicate of descriptor 0), so
/// that `-bs` can read it from a thread of its own.
fn stdin_file() -> std::io::Result<std::fs::File> {
    use std::os::fd::AsFd;
    Ok(std::io::stdin().as_fd().try_clone_to_owned()?.into())
}

fn say(stderr: &mut dyn Write, prog: &str, code: u8, msg: &str) -> u8 {
    let _ = writeln!(stderr, "{prog}: {msg}");
    code
}

/// `newaliases` (`sendmail -bi`): there is nothing to compile (the daemons
/// read the text file and notice its changes within a second), so it
/// reads the system aliases file exactly as they will, reports every line
/// they refuse or cannot read, and asks a running qmgr to read it at once.
/// Exit 65 when a line cannot be read at all.
fn newaliases(
    cfg: &facteur_config::Config,
    prog: &str,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> u8 {
    use facteur_directory::system;
    use facteur_spool::control::{Op, request};
    let settings = system::Settings::from_config(cfg);
    if settings.file.as_os_str().is_empty() {
        let _ = writeln!(stdout, "{prog}: no aliases file ([aliases] file is empty)");
        return exit::OK;
    }
    let t = system::check(&settings);
    for p in &t.problems {
        let _ = writeln!(stderr, "{prog}: {p}");
    }
    let file = settings.file.display();
    let missing = !settings.file.exists();
    let _ = match missing {
        true => writeln!(stdout, "{prog}: {file} does not exist: no aliases"),
        false => writeln!(stdout, "{prog}: {file}: {} aliases", t.entries.len()),
    };
    if !t.entries.contains_key("root") {
        let _ = writeln!(
            stderr,
            "{prog}: {file} has no entry for root: root's mail (cron, system tools) is refused; add `root: you@example.org`"
        );
    }
    let said = match request(&cfg.qmgr_control_socket(), &Op::Aliases) {
        Ok(Ok(lines)) => format!("facteur-qmgr read it again ({})", lines.join("; ")),
        Ok(Err(e)) => format!("facteur-qmgr: {e}"),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            format!("cannot tell facteur-qmgr ({e}); the daemons notice the change within a second")
        }
        Err(_) => "facteur-qmgr is not running; the daemons read the file when they start".into(),
    };
    let _ = writeln!(stdout, "{prog}: {said}");
    if t.errors > 0 {
        exit::DATAERR
    } else {
        exit::OK
    }
}

/// The whole command: `args` is argv (argv[0] included), `config_env` the
/// value of `FACTEUR_CONFIG`. Returns the exit code.
pub fn run(
    args: Vec<OsString>,
    config_env: Option<OsString>,
    stdin: impl BufRead,
    mut stdout: impl Write,
    mut stderr: impl Write,
) -> u8 {
    let argv0 = args
        .first()
        .map(|a| a.to_string_lossy().into_owned())
        .unwrap_or_else(|| "sendmail".into());
    let prog = argv0.rsplit('/').next().unwrap_or("sendmail").to_string();
    let mut strs = Vec::new();
    for a in args.iter().skip(1) {
        match a.to_str() {
            Some(s) => strs.push(s.to_string()),
            None => {
                return say(
                    &mut stderr,
                    &prog,
                    exit::USAGE,
                    &format!("argument {a:?} is not UTF-8"),
                );
            }
        }
    }
    let opts = match args::parse(&argv0, &strs) {
        Ok(o) => o,
        Err(e) => {
            return say(
                &mut stderr,
                &prog,
                exit::USAGE,
                &format!("{e}\n{}", args::USAGE),
            );
        }
    };
    let config = opts
        .config
        .clone()
        .or_else(|| config_env.map(PathBuf::from))
        .unwrap_or_else(|| facteur_config::DEFAULT_PATH.into());
    let cfg = match facteur_config::Config::load(&config) {
        Ok(c) => c,
        Err(e) => return say(&mut stderr, &prog, exit::CONFIG, &e.to_string()),
    };
    let ctx = Context::from_config(&cfg);
    match opts.mode {
        Mode::NewAliases => newaliases(&cfg, &prog, &mut stdout, &mut stderr),
        Mode::Flush => {
            facteur_spool::wake_qmgr(&ctx.qmgr_socket);
            exit::OK
        }
        Mode::ListQueue => {
            let spool = match Spool::open(&ctx.spool_dir) {
                Ok(s) => s,
                Err(e) => {
                    return say(
                        &mut stderr,
                        &prog,
                        exit::NOPERM,
                        &format!("cannot read the queue: {e}"),
                    );
                }
            };
            let mut err = Vec::new();
            let r = mailq::list_queue(&spool, &mut stdout, &mut err);
            let _ = stderr.write_all(&err);
            match r {
                Ok(true) => exit::OK,
                Ok(false) => exit::NOPERM,
                Err(e) => say(&mut stderr, &prog, exit::IOERR, &e.to_string()),
            }
        }
        // The session reads descriptor 0 itself (`stdin` is for -bm/-t).
        Mode::Smtp => match stdin_file().and_then(|i| smtp_session(&ctx, i, &mut stdout)) {
            Ok(()) => exit::OK,
            Err(e) => say(&mut stderr, &prog, exit::IOERR, &format!("-bs: {e}")),
        },
        Mode::Deliver => match deliver(&ctx, &opts, stdin) {
            Ok(id) => {
                if opts.verbose {
                    let _ = writeln!(stderr, "{prog}: queued as {id}");
                }
                exit::OK
            }
            Err(f) => say(&mut stderr, &prog, f.code, &f.message),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(dir: &std::path::Path) -> Context {
        Context {
            spool_dir: dir.join("spool"),
            qmgr_socket: dir.join("qmgr.sock"),
            hostname: "host.example".into(),
            user: "alice".into(),
            user_full_name: Some("Alice Liddell".into()),
            max_size: 1 << 20,
        }
    }

    fn opts(args: &str) -> Options {
        let v: Vec<String> = args.split_whitespace().map(String::from).collect();
        args::parse("sendmail", &v).unwrap()
    }

    fn queued(ctx: &Context, id: &str) -> (Envelope, String) {
        let spool = Spool::open(&ctx.spool_dir).unwrap();
        let env = spool.read(QueueName::Maildrop, id).unwrap().envelope;
        let mut m = String::new();
        spool
            .open_message(QueueName::Maildrop, id)
            .unwrap()
            .read_to_string(&mut m)
            .unwrap();
        (env, m)
    }

    #[test]
    fn addresses_normalized() {
        assert_eq!(
            normalize_address("root", "h.example").unwrap(),
            "root@h.example"
        );
        assert_eq!(
            normalize_address("<A@B.Example>", "h").unwrap(),
            "A@b.example"
        );
        assert!(normalize_address("a@", "h").is_err());
        assert!(normalize_address("a\u{7}b", "h").is_err());
    }

    #[test]
    fn adds_missing_headers() {
        let d = tempfile::tempdir().unwrap();
        let c = ctx(d.path());
        let id = deliver(&c, &opts("root"), &b"Subject: hi\n\nbody\n"[..]).unwrap();
        let (env, m) = queued(&c, &id);
        assert_eq!(env.sender, "alice@host.example");
        assert_eq!(env.recipients[0].address, "root@host.example");
        assert_eq!(env.protocol.as_deref(), Some("sendmail"));
        assert_eq!(env.local_user.as_deref(), Some("alice"));
        assert_eq!(env.body, BodyType::SevenBit);
        assert!(
            m.starts_with("Subject: hi\r\nFrom: Alice Liddell <alice@host.example>\r\nDate: "),
            "{m}"
        );
        assert!(
            m.contains(&format!(
                "\r\nMessage-ID: <{id}@host.example>\r\n\r\nbody\r\n"
            )),
            "{m}"
        );
    }

    #[test]
    fn keeps_present_headers_and_uses_dash_f_and_dash_capital_f() {
        let d = tempfile::tempdir().unwrap();
        let c = ctx(d.path());
        let input =
            "From: x@y.example\nDate: Mon, 1 Jan 2024 00:00:00 +0000\nMessage-ID: <m@y>\n\nb\n";
        let id = deliver(
            &c,
            &opts("-f bounce@y.example a@z.example"),
            input.as_bytes(),
        )
        .unwrap();
        let (env, m) = queued(&c, &id);
        assert_eq!(env.sender, "bounce@y.example");
        assert_eq!(m, input.replace('\n', "\r\n"));
        let id = deliver(
            &c,
            &opts("-FCron -f <> a@z.example"),
            &b"\xc3\xa9t\xc3\xa9\n"[..],
        )
        .unwrap();
        let (env, m) = queued(&c, &id);
        assert_eq!(env.sender, "");
        assert_eq!(env.body, BodyType::EightBitMime);
        assert!(m.starts_with("From: Cron <alice@host.example>\r\n"), "{m}");
        assert!(m.ends_with("\r\n\r\nété\r\n"), "{m}");
    }

    #[test]
    fn dash_t_reads_headers_and_drops_bcc() {
        let d = tempfile::tempdir().unwrap();
        let c = ctx(d.path());
        let input = "To: Bob <bob@b.example>, carl\nCc: bob@b.example\nBcc: secret@s.example\nSubject: t\n\nx\n.\nignored\n";
        let id = deliver(
            &c,
            &opts("-t -N failure,delay -R hdrs -V env1 extra@e.example"),
            input.as_bytes(),
        )
        .unwrap();
        let (env, m) = queued(&c, &id);
        let rcpts: Vec<_> = env.recipients.iter().map(|r| r.address.as_str()).collect();
        assert_eq!(
            rcpts,
            [
                "extra@e.example",
                "bob@b.example",
                "carl@host.example",
                "secret@s.example"
            ]
        );
        assert!(env.recipients[0].notify.failure && env.recipients[0].notify.delay);
        assert_eq!(env.ret, Some(Ret::Hdrs));
        assert_eq!(env.envid.as_deref(), Some("env1"));
        assert!(!m.contains("secret") && !m.contains("Bcc"), "{m}");
        assert!(m.ends_with("\r\n\r\nx\r\n"), "dot ends input: {m}");
    }

    #[test]
    fn errors_have_sysexits_codes() {
        let d = tempfile::tempdir().unwrap();
        let c = ctx(d.path());
        let code =
            |args: &str, input: &str| deliver(&c, &opts(args), input.as_bytes()).unwrap_err().code;
        assert_eq!(code("", "x\n"), exit::USAGE);
        assert_eq!(code("-t", "Subject: none\n\nx\n"), exit::USAGE);
        assert_eq!(code("a@@", "x\n"), exit::NOUSER);
        assert_eq!(code("-f a@ b@c.example", "x\n"), exit::NOUSER);
        assert_eq!(code("-N sometimes a@b.example", "x\n"), exit::USAGE);
        let big = "y".repeat(2 << 20);
        assert_eq!(code("a@b.example", &big), exit::DATAERR);
        let mut bad = c.clone();
        bad.spool_dir = "/proc/facteur-no-such-spool".into();
        assert_eq!(
            deliver(&bad, &opts("a@b.example"), &b"x\n"[..])
                .unwrap_err()
                .code,
            exit::CANTCREAT
        );
    }

    #[test]
    fn run_without_config_exits_78_and_newaliases_0() {
        let args = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run(
            args(&["sendmail", "-C", "/nonexistent/f.toml", "a@b.example"]),
            None,
            &b""[..],
            &mut out,
            &mut err,
        );
        assert_eq!(code, exit::CONFIG);
        assert!(String::from_utf8_lossy(&err).contains("/nonexistent/f.toml"));
        let code = run(
            args(&["/usr/bin/newaliases", "-C", "/nonexistent/f.toml"]),
            None,
            &b""[..],
            &mut out,
            &mut err,
        );
        assert_eq!(code, exit::CONFIG);
        let code = run(
            args(&["sendmail", "-k"]),
            None,
            &b""[..],
            &mut out,
            &mut err,
        );
        assert_eq!(code, exit::USAGE);
    }

    #[test]
    fn smtp_session_queues() {
        let d = tempfile::tempdir().unwrap();
        let c = ctx(d.path());
        let mut out = Vec::new();
        let input = "HELO me\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<root@host.example>\r\nDATA\r\nBcc: x@y.example\r\nSubject: s\r\n\r\nhi\r\n.\r\nQUIT\r\n";
        smtp_session(
            &c,
            std::io::Cursor::new(input.as_bytes().to_vec()),
            &mut out,
        )
        .unwrap();
        let out = String::from_utf8(out).unwrap();
        let id = out
            .split("queued as ")
            .nth(1)
            .unwrap()
            .split("\r\n")
            .next()
            .unwrap();
        let (env, m) = queued(&c, id);
        assert_eq!(env.recipients[0].address, "root@host.example");
        assert!(m.starts_with("Subject: s\r\nFrom: "), "{m}");
        assert!(!m.contains("Bcc"));
    }
}
