//! The sendmail command line: the flags cron, logwatch, Debian maintainer
//! scripts and mail libraries pass (sendmail 8 and Postfix `sendmail(1)`).
//!
//! Why not clap: sendmail's syntax predates it: values attached to their
//! flag (`-fuser@host`, `-FCron Daemon`), sub-letters (`-oi`, `-odb`, `-bm`),
//! clustered flags (`-ti`), and options anywhere before `--` (GNU getopt
//! permutes). A table-driven hand parser states that exactly.
//!
//! Pure: no I/O; errors are usage errors (the caller exits 64, EX_USAGE).

use std::path::PathBuf;

/// What to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// `-bm` (default): read a message from stdin and queue it.
    #[default]
    Deliver,
    /// `-bp`, `mailq`: list the queue.
    ListQueue,
    /// `-bs`: speak SMTP on stdin/stdout.
    Smtp,
    /// `-bi`, `newaliases`: check the system aliases file, tell qmgr.
    NewAliases,
    /// `-q`: ask the queue manager to run the queue now.
    Flush,
}

/// The parsed command line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Options {
    pub mode: Mode,
    /// `-C PATH` / `--config PATH`.
    pub config: Option<PathBuf>,
    /// `-f ADDR` / `-r ADDR`: the envelope sender (`<>` or empty = null).
    pub sender: Option<String>,
    /// `-F NAME`: full name for an added From: header.
    pub full_name: Option<String>,
    /// `-t`: recipients from To/Cc/Bcc.
    pub extract_recipients: bool,
    /// `-i` / `-oi`: a line with only "." does not end the input.
    pub ignore_dots: bool,
    /// `-v`: say what happened on stderr.
    pub verbose: bool,
    /// `-N never|success,failure,delay`: DSN NOTIFY for every recipient.
    pub notify: Option<String>,
    /// `-R full|hdrs`: DSN RET.
    pub ret: Option<String>,
    /// `-V envid`: DSN ENVID.
    pub envid: Option<String>,
    /// Remaining arguments: recipients (each may hold a comma list).
    pub recipients: Vec<String>,
}

/// How the program was called (argv[0]'s base name) sets the default mode.
pub fn mode_for_name(argv0: &str) -> Mode {
    match argv0.rsplit('/').next().unwrap_or(argv0) {
        "mailq" => Mode::ListQueue,
        "newaliases" => Mode::NewAliases,
        _ => Mode::Deliver,
    }
}

/// Flags that take a value: attached (`-fx`) or as the next argument (`-f x`).
const WITH_VALUE: &[char] = &[
    'f', 'r', 'F', 'C', 'N', 'R', 'V', 'B', 'h', 'X', 'L', 'p', 'O',
];
/// Flags that take no value and are accepted for compatibility.
const IGNORED: &[char] = &['m', 'n', 'U', 'G', 'e', 's', 'x', 'A', 'd'];

/// Parses the arguments after argv[0].
pub fn parse(argv0: &str, args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        mode: mode_for_name(argv0),
        ..Options::default()
    };
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if arg == "--" {
            o.recipients.extend(args[i..].iter().cloned());
            break;
        }
        if let Some(long) = arg.strip_prefix("--") {
            match long.split_once('=') {
                Some(("config", v)) => o.config = Some(v.into()),
                None if long == "config" => {
                    let v = args.get(i).ok_or("--config needs a file")?;
                    i += 1;
                    o.config = Some(v.into());
                }
                _ => return Err(format!("unknown option {arg}")),
            }
            continue;
        }
        let Some(cluster) = arg.strip_prefix('-').filter(|c| !c.is_empty()) else {
            o.recipients.push(arg.clone());
            continue;
        };
        for (pos, c) in cluster.char_indices() {
            let rest = &cluster[pos + c.len_utf8()..];
            match c {
                't' => o.extract_recipients = true,
                'i' => o.ignore_dots = true,
                'v' => o.verbose = true,
                'b' => {
                    o.mode = match rest {
                        "m" => Mode::Deliver,
                        "p" => Mode::ListQueue,
                        "s" => Mode::Smtp,
                        "i" => Mode::NewAliases,
                        "" => return Err("-b needs a mode letter (m, p, s, i)".into()),
                        m => return Err(format!("-b{m}: mode not supported")),
                    };
                    break;
                }
                'o' => {
                    // -oi is -i; every other -oX... (-oem, -odb, -oee) is ignored.
                    if rest == "i" {
                        o.ignore_dots = true;
                    }
                    break;
                }
                'q' => {
                    o.mode = Mode::Flush;
                    break;
                }
                c if WITH_VALUE.contains(&c) => {
                    let value = if !rest.is_empty() {
                        rest.to_string()
                    } else {
                        let v = args.get(i).ok_or(format!("-{c} needs a value"))?;
                        i += 1;
                        v.clone()
                    };
                    match c {
                        'f' | 'r' => o.sender = Some(value),
                        'F' => o.full_name = Some(value),
                        'C' => o.config = Some(value.into()),
                        'N' => o.notify = Some(value),
                        'R' => o.ret = Some(value),
                        'V' => o.envid = Some(value),
                        _ => {}
                    }
                    break;
                }
                c if IGNORED.contains(&c) => {}
                c => return Err(format!("unknown option -{c}")),
            }
        }
    }
    Ok(o)
}

/// Usage text for errors.
pub const USAGE: &str = "usage: sendmail [-t] [-i] [-f sender] [-F name] [-C config] [-bm|-bs|-bp|-bi] [--] [recipient ...]";

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &str) -> Options {
        let v: Vec<String> = args.split_whitespace().map(String::from).collect();
        parse("sendmail", &v).unwrap_or_else(|e| panic!("{args}: {e}"))
    }

    #[test]
    fn table_of_flags() {
        type Check = fn(&Options) -> bool;
        let cases: &[(&str, Check)] = &[
            ("", |o| *o == Options::default()),
            ("-t", |o| o.extract_recipients),
            ("-i", |o| o.ignore_dots),
            ("-oi", |o| o.ignore_dots),
            ("-ti", |o| o.extract_recipients && o.ignore_dots),
            ("-it", |o| o.extract_recipients && o.ignore_dots),
            ("-oi -t", |o| o.extract_recipients && o.ignore_dots),
            ("-fa@b.example", |o| {
                o.sender.as_deref() == Some("a@b.example")
            }),
            ("-f a@b.example", |o| {
                o.sender.as_deref() == Some("a@b.example")
            }),
            ("-r a@b.example", |o| {
                o.sender.as_deref() == Some("a@b.example")
            }),
            ("-f <>", |o| o.sender.as_deref() == Some("<>")),
            ("-FCronDaemon", |o| {
                o.full_name.as_deref() == Some("CronDaemon")
            }),
            ("-F Cron", |o| o.full_name.as_deref() == Some("Cron")),
            ("-bm u", |o| {
                o.mode == Mode::Deliver && o.recipients == ["u"]
            }),
            ("-bp", |o| o.mode == Mode::ListQueue),
            ("-bs", |o| o.mode == Mode::Smtp),
            ("-bi", |o| o.mode == Mode::NewAliases),
            ("-q", |o| o.mode == Mode::Flush),
            ("-q30m", |o| o.mode == Mode::Flush),
            ("-v", |o| o.verbose),
            ("-odi -odb -oem -oee -oQ/x", |o| !o.ignore_dots),
            ("-C /etc/f.toml", |o| o.config == Some("/etc/f.toml".into())),
            ("-C/etc/f.toml", |o| o.config == Some("/etc/f.toml".into())),
            ("--config /x.toml", |o| o.config == Some("/x.toml".into())),
            ("--config=/x.toml", |o| o.config == Some("/x.toml".into())),
            ("-N never -R hdrs -V E1", |o| {
                o.notify.as_deref() == Some("never")
                    && o.ret.as_deref() == Some("hdrs")
                    && o.envid.as_deref() == Some("E1")
            }),
            ("-B8BITMIME -h 10 -n -m -U", |o| o.recipients.is_empty()),
            ("a b,c", |o| o.recipients == ["a", "b,c"]),
            ("a -t b", |o| {
                o.extract_recipients && o.recipients == ["a", "b"]
            }),
            ("-- -t x", |o| {
                !o.extract_recipients && o.recipients == ["-t", "x"]
            }),
            // cron (cronie): -FCronDaemon -i -B8BITMIME -oem user
            ("-FCronDaemon -i -B8BITMIME -oem root", |o| {
                o.ignore_dots && o.recipients == ["root"]
            }),
        ];
        for (args, check) in cases {
            assert!(check(&p(args)), "{args}: {:?}", p(args));
        }
    }

    #[test]
    fn bad_flags_are_usage_errors() {
        for bad in ["-k", "-b", "-bd", "-bv", "-f", "-C", "--nope", "--config"] {
            let v: Vec<String> = bad.split_whitespace().map(String::from).collect();
            assert!(parse("sendmail", &v).is_err(), "{bad}");
        }
    }

    #[test]
    fn name_sets_the_mode() {
        assert_eq!(parse("/usr/bin/mailq", &[]).unwrap().mode, Mode::ListQueue);
        assert_eq!(parse("newaliases", &[]).unwrap().mode, Mode::NewAliases);
        assert_eq!(
            parse("/usr/sbin/sendmail", &[]).unwrap().mode,
            Mode::Deliver
        );
    }
}
