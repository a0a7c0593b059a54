//! The command line of facteurctl.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// The administrator's tool for facteur: configuration, domains, users,
/// aliases, and `up` to run the whole suite in the foreground.
#[derive(Debug, Parser)]
#[command(name = "facteurctl", version, about)]
pub struct Cli {
    /// The configuration file.
    #[arg(long, short = 'c', global = true, default_value = facteur_config::DEFAULT_PATH)]
    pub config: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the configuration file without starting anything.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Write a complete development setup under DIR (loopback, development
    /// ports, self-signed certificate, domain example.test, user demo@example.test).
    Init(InitArgs),
    /// Run every daemon of the suite in the foreground (trials, development, tests).
    Up(UpArgs),
    /// Local domains.
    Domain {
        #[command(subcommand)]
        action: DomainAction,
    },
    /// Users (mailboxes). Passwords are read from a prompt, or from standard
    /// input when it is not a terminal; never from the command line.
    User {
        #[command(subcommand)]
        action: UserAction,
    },
    /// Aliases: one address to one or more addresses; `@domain` is the
    /// domain's catch-all.
    Alias {
        #[command(subcommand)]
        action: AliasAction,
    },
    /// Mailing lists: an address whose mail goes to its members, from the
    /// list (`LIST-bounces@DOMAIN`, bounces counted), with the List-*
    /// header fields; posts the policy does not let through wait for
    /// `list approve`.
    List {
        #[command(subcommand)]
        action: ListAction,
    },
    /// The mail collector's accounts (facteur-fetchd): remote POP3 or
    /// IMAP mailboxes whose mail is brought into a local mailbox.
    Fetch {
        #[command(subcommand)]
        action: FetchAction,
    },
    /// TLS certificates.
    Tls {
        #[command(subcommand)]
        action: TlsAction,
    },
    /// The mail queue: list, show, flush, hold, release, delete, requeue.
    /// Applied by the running facteur-qmgr over its control socket; with
    /// qmgr stopped, on the spool directly.
    Queue {
        #[command(subcommand)]
        action: QueueAction,
    },
    /// Print the DNS records to publish for DOMAIN (MX, A/AAAA, SPF, DKIM,
    /// DMARC, MTA-STS, TLS-RPT, SRV for mail clients, and what to ask for
    /// PTR), for the configured host name.
    DnsRecords(DnsArgs),
    /// DKIM keys: facteur-qmgr signs the mail of a domain that has keys as
    /// it leaves (Ed25519 and RSA-2048 signatures).
    Dkim {
        #[command(subcommand)]
        action: DkimAction,
    },
    /// Move users' mail in from another server, keeping every message's UID,
    /// UIDVALIDITY, flags, keywords and date, so that mail clients download
    /// nothing again. Nothing at the source is changed; an interrupted
    /// import can be run again and adds only what is missing.
    Import {
        #[command(subcommand)]
        action: ImportAction,
    },
    /// Write users' mail in another server's format (a way back), with the
    /// same UIDs, flags and dates.
    Export {
        #[command(subcommand)]
        action: ExportAction,
    },
    /// A console's "filters" form for a user or a domain: conditions on
    /// size, From, To and Subject, joined by all/any (or always), and an
    /// action (move, copy to an address, delete); kept as the Sieve script
    /// "filters".
    Filter {
        #[command(subcommand)]
        action: FilterAction,
    },
    /// Shared mailboxes: who may do what on a user's mailboxes (IMAP ACL,
    /// RFC 4314). The other users of the domain see a shared mailbox as
    /// `Shared/<owner>/<mailbox>`.
    Acl {
        #[command(subcommand)]
        action: AclAction,
    },
    /// Sieve filtering rules: users' scripts, and `check` / `test` for
    /// writing them.
    Sieve {
        #[command(subcommand)]
        action: SieveAction,
    },
    /// The suite's log lines in time order, across the daemons, filtered:
    /// from the systemd journal, or the `*.log` files of `--dir`.
    Log(LogArgs),
    /// Mail traffic counted from the daemons' log lines: received,
    /// delivered, deferred, bounced and refused, by key.
    /// `stats deliverability`: per destination domain with the last error.
    Stats(StatsArgs),
    /// A day's summary (totals, per hour, top senders and recipients, top
    /// refusal, deferral and bounce reasons), as pflogsumm gives Postfix's.
    Report(ReportArgs),
    /// The allow and deny lists of smtpd's screening: networks, addresses
    /// and domains always accepted (no pregreet wait, DNS lists, FCrDNS or
    /// greylisting) or always refused. Applied within a second, without a
    /// restart.
    Access {
        #[command(subcommand)]
        action: AccessAction,
    },
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// `deliverability`: by recipient domain, with the last error.
    pub what: Option<String>,
    /// From this time on (UTC: YYYY-MM-DD or YYYY-MM-DDTHH:MM).
    #[arg(long)]
    pub since: Option<String>,
    /// Before this time.
    #[arg(long)]
    pub until: Option<String>,
    /// sender-domain, recipient-domain, mailbox, hour, day, month,
    /// remote-host, or total.
    #[arg(long, default_value = "day")]
    pub by: String,
    /// table, json or csv.
    #[arg(long, default_value = "table")]
    pub format: String,
    /// Read the `*.log` files of this directory instead of the journal.
    #[arg(long)]
    pub dir: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The day (YYYY-MM-DD, UTC); yesterday without one.
    #[arg(long, num_args = 0..=1, default_missing_value = "yesterday")]
    pub day: Option<String>,
    /// Mail the report to `[report] mail_to` (through the queue) instead
    /// of printing it; nothing is done when that key is empty (what
    /// facteur-report.timer runs each morning).
    #[arg(long)]
    pub mail: bool,
    /// Read the `*.log` files of this directory instead of the journal.
    #[arg(long)]
    pub dir: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub struct LogArgs {
    /// One day (YYYY-MM-DD).
    #[arg(long)]
    pub date: Option<String>,
    /// From this time on (YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS]).
    #[arg(long)]
    pub since: Option<String>,
    /// Before this time.
    #[arg(long)]
    pub until: Option<String>,
    /// Lines containing this text.
    #[arg(long)]
    pub grep: Option<String>,
    /// One message's lines, through every daemon.
    #[arg(long)]
    pub queue_id: Option<String>,
    /// Lines naming this address (any case).
    #[arg(long)]
    pub address: Option<String>,
    /// Warnings and errors only.
    #[arg(long)]
    pub errors: bool,
    /// Keep printing new lines as they come.
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// Read the `*.log` files of this directory instead of the journal (a
    /// development setup).
    #[arg(long)]
    pub dir: Option<std::path::PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum AccessAction {
    /// Always accept ENTRY: a network (192.0.2.0/24, 2001:db8::/48), an
    /// address (user@example.org), a domain (example.org) or its
    /// subdomains (.example.org).
    Allow { entry: String },
    /// Always refuse ENTRY (networks at connection, addresses and domains
    /// as senders).
    Deny { entry: String },
    /// Both lists: the configuration's (`[screen] allow/deny`) and this
    /// command's.
    List,
    /// Remove ENTRY from this command's lists.
    Del { entry: String },
}

#[derive(Debug, Subcommand)]
pub enum ListAction {
    /// Create LIST@DOMAIN (the domain must be local; the address must not
    /// be a user or an alias).
    Create {
        list: String,
        /// Gets LIST-owner and LIST-request mail and held-post notices.
        #[arg(long)]
        owner: Option<String>,
    },
    /// Delete a list, its members and held posts.
    Delete { list: String },
    /// Add members (one already there is enabled again).
    Add {
        list: String,
        #[arg(required = true)]
        members: Vec<String>,
    },
    /// Remove members.
    Remove {
        list: String,
        #[arg(required = true)]
        members: Vec<String>,
    },
    /// The members, with their bounce counts and whether disabled.
    Members { list: String },
    /// Change a list's settings.
    Set {
        list: String,
        /// members (others held), anyone, or moderated (all held).
        #[arg(long)]
        post: Option<String>,
        /// list (a Reply-To: the list) or sender (replies to the author).
        #[arg(long, value_name = "list|sender")]
        reply_to: Option<String>,
        /// `[TAG]` in front of subjects ("" = none).
        #[arg(long)]
        subject_tag: Option<String>,
        #[arg(long)]
        owner: Option<String>,
        /// Bounces after which a member is disabled.
        #[arg(long)]
        bounce_limit: Option<u32>,
        /// yes: From: becomes the list when the copy changes what the
        /// author signed (subject tag, Reply-To:), as Mailman does for DMARC.
        #[arg(long, value_name = "yes|no")]
        munge_from: Option<String>,
    },
    /// The lists and their settings (or one).
    Show { list: Option<String> },
    /// Posts held for the owner (of one list, or all).
    Pending { list: Option<String> },
    /// Send a held post to the members.
    Approve { id: String },
    /// Throw a held post away.
    Reject { id: String },
}

#[derive(Debug, Subcommand)]
pub enum FetchAction {
    /// Add an account; the password is read from the terminal or standard
    /// input, never from the command line.
    Add {
        /// The local mailbox (with --multidrop, where mail that names no
        /// local recipient goes).
        local_user: String,
        #[arg(long, value_name = "pop3|imap")]
        protocol: String,
        #[arg(long)]
        host: String,
        /// Default: 995/993 with implicit TLS, else 110/143.
        #[arg(long)]
        port: Option<u16>,
        #[arg(
            long,
            value_name = "implicit|starttls|none",
            default_value = "implicit"
        )]
        tls: String,
        /// Do not check the server's certificate (said in the log).
        #[arg(long)]
        insecure: bool,
        /// The remote login.
        #[arg(long)]
        user: String,
        /// Leave the messages on the server (the default).
        #[arg(long, conflicts_with = "delete")]
        keep: bool,
        /// Delete each message on the server once its local copy is safe.
        #[arg(long)]
        delete: bool,
        /// Only messages not fetched before (else all of them, each run).
        #[arg(long)]
        new_only: bool,
        /// Time between runs (10m, 1h).
        #[arg(long, default_value = "10m")]
        interval: String,
        /// IMAP folders to read (repeat; default INBOX).
        #[arg(long = "folder")]
        folders: Vec<String>,
        /// Deliver to the local recipients the messages name.
        #[arg(long)]
        multidrop: bool,
        /// At most this many messages per run.
        #[arg(long, default_value_t = 500)]
        max: u32,
    },
    /// The accounts.
    List,
    /// Remove an account (what it fetched stays).
    Del { id: i64 },
    /// Run one account (or all) now, in the foreground, and report.
    Run {
        id: Option<i64>,
        #[arg(long, conflicts_with = "id")]
        all: bool,
    },
    /// Each account's last run, its result and error, and the next run.
    Status,
}

/// Whose filters: a user, or `--domain D` (every user of D, before their own).
#[derive(Debug, Args)]
pub struct FilterTarget {
    /// The user (user@domain).
    pub user: Option<String>,
    /// The domain's filters instead of a user's.
    #[arg(long, value_name = "DOMAIN", conflicts_with = "user")]
    pub domain: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum FilterAction {
    /// Add a filter: `--if FIELD OP VALUE` (repeatable; FIELD from, to,
    /// subject or size; OP is, contains, starts, ends or not-is,
    /// not-contains, not-starts, not-ends; over or under for size, in
    /// bytes), all of them by default or `--any`, or `--always`; then one of
    /// `--move FOLDER`, `--copy-to ADDRESS`, `--delete`.
    Add {
        #[command(flatten)]
        target: FilterTarget,
        /// Any condition is enough (default: all of them).
        #[arg(long)]
        any: bool,
        /// No condition: every message.
        #[arg(long)]
        always: bool,
        #[arg(long = "if", num_args = 3, value_names = ["FIELD", "OP", "VALUE"])]
        cond: Vec<String>,
        #[arg(long = "move", value_name = "FOLDER")]
        move_to: Option<String>,
        #[arg(long, value_name = "ADDRESS")]
        copy_to: Option<String>,
        #[arg(long)]
        delete: bool,
    },
    /// The filters, numbered.
    List {
        #[command(flatten)]
        target: FilterTarget,
    },
    /// Delete filter NUMBER (as `list` numbers them): `del USER NUMBER` or
    /// `del --domain DOMAIN NUMBER`.
    Del {
        /// The domain's filters instead of a user's.
        #[arg(long, value_name = "DOMAIN")]
        domain: Option<String>,
        /// USER NUMBER, or NUMBER with --domain.
        #[arg(num_args = 1..=2, value_names = ["USER", "NUMBER"], required = true)]
        args: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AclAction {
    /// The grants on USER's mailboxes (or on MAILBOX only).
    List {
        user: String,
        mailbox: Option<String>,
    },
    /// Give IDENTIFIER (a user of the same domain, its local part alone,
    /// `anyone` or `authenticated`) RIGHTS on USER's MAILBOX: letters of
    /// "lrswipkxtea" (l see, r read, s keep \Seen, w other flags, i add
    /// messages, p post, k create below, x delete or rename, t mark
    /// \Deleted, e expunge, a administer); "+..." adds, "-..." removes;
    /// "all" and "read" (lrs) and "write" (lrswipkxte) are shorthands.
    Set {
        user: String,
        mailbox: String,
        identifier: String,
        #[arg(allow_hyphen_values = true)]
        rights: String,
    },
    /// Take IDENTIFIER's rights on USER's MAILBOX away.
    Delete {
        user: String,
        mailbox: String,
        identifier: String,
    },
    /// The other users' mailboxes USER sees, with USER's rights.
    Shared { user: String },
}

#[derive(Debug, Subcommand)]
pub enum SieveAction {
    /// USER's scripts, the active one marked.
    List { user: String },
    /// Print a script.
    Get { user: String, name: String },
    /// Store FILE (`-`: standard input) as script NAME; refused when it
    /// does not compile.
    Put {
        user: String,
        name: String,
        file: PathBuf,
        /// Make it the active script too.
        #[arg(long)]
        activate: bool,
    },
    /// Make NAME the script that runs at delivery.
    Activate { user: String, name: String },
    /// No script runs for USER any more (they stay stored).
    Deactivate { user: String },
    /// Delete a script (not the active one).
    Delete { user: String, name: String },
    /// Rename a script (it stays active if it was).
    Rename {
        user: String,
        from: String,
        to: String,
    },
    /// Compile FILE and print each error with its line and column.
    Check { file: PathBuf },
    /// Print the actions FILE would take on the message in MESSAGE (an RFC
    /// 5322 file), without taking them.
    Test {
        file: PathBuf,
        message: PathBuf,
        /// The envelope sender (default: none, the null sender).
        #[arg(long)]
        from: Option<String>,
        /// The envelope recipient (default: user@example.test).
        #[arg(long)]
        to: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ImportAction {
    /// A Dovecot Maildir++ tree (dovecot-uidlist, dovecot-keywords,
    /// subscriptions): `SRC USER`, SRC being the user's Maildir (the
    /// directory with cur/ new/ tmp/ and the .Folder directories); or
    /// `--domain DOMAIN SRC`, SRC holding one directory per user, named by
    /// its local part (with --subdir, the Maildir is below it). The users
    /// must exist (`facteurctl user add`). SRC must be readable by the mail
    /// store's owner.
    DovecotMaildir {
        src: PathBuf,
        /// The facteur user (without --domain).
        user: Option<String>,
        /// Every user of DOMAIN that SRC has a directory for.
        #[arg(long, value_name = "DOMAIN")]
        domain: Option<String>,
        /// With --domain: the Maildir's path inside each user's directory
        /// (e.g. `Maildir`).
        #[arg(long, value_name = "PATH")]
        subdir: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ExportAction {
    /// USER's mailboxes as a Dovecot Maildir++ tree at DST (made; must not
    /// hold a Maildir yet), with dovecot-uidlist, dovecot-keywords and
    /// subscriptions, so that Dovecot shows the same UIDs.
    DovecotMaildir { user: String, dst: PathBuf },
}

#[derive(Debug, Subcommand)]
pub enum DkimAction {
    /// Make keys for DOMAIN: an Ed25519 and an RSA-2048 key, or the one
    /// --algorithm names. They sign at once (or after --delay); publish
    /// their records (`dkim dns DOMAIN`) first.
    Generate {
        domain: String,
        /// The selector (one key: needs --algorithm); default
        /// f<date>e / f<date>r.
        #[arg(long, value_name = "NAME")]
        selector: Option<String>,
        /// ed25519 or rsa; default: both.
        #[arg(long, value_name = "ALG")]
        algorithm: Option<String>,
        /// Start signing this long from now ("0", "2h", "2d").
        #[arg(long, value_name = "DURATION", default_value = "0")]
        delay: String,
    },
    /// The keys of every domain (or of DOMAIN): selector, algorithm,
    /// state (pending, signing, published, retired) and dates.
    List { domain: Option<String> },
    /// Replace DOMAIN's keys: new selectors are made and published now,
    /// sign after --delay (default trust.outgoing.rotation_delay), and the
    /// replaced ones stay published --retire-after longer (default
    /// trust.outgoing.retire_after), then retire.
    Rotate {
        domain: String,
        #[arg(long, value_name = "DURATION")]
        delay: Option<String>,
        #[arg(long, value_name = "DURATION")]
        retire_after: Option<String>,
    },
    /// The DKIM TXT records of DOMAIN to publish (every key that is not
    /// retired), as zone-file lines.
    Dns { domain: String },
}

#[derive(Debug, Subcommand)]
pub enum TlsAction {
    /// Write a self-signed certificate and key (mode 0600). Without --cert
    /// and --key: the paths of [tls] in the configuration.
    SelfSigned {
        #[arg(long, value_name = "PATH")]
        cert: Option<PathBuf>,
        #[arg(long, value_name = "PATH")]
        key: Option<PathBuf>,
        /// A name the certificate is for (repeatable); default: the
        /// configured host name.
        #[arg(long = "name", value_name = "HOST")]
        names: Vec<String>,
        /// Replace an existing certificate or key.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Args)]
pub struct DnsArgs {
    /// The mail domain (the part after @ in your addresses).
    pub domain: String,
    /// This server's public IPv4 address (default: what the host name
    /// resolves to, if public).
    #[arg(long, value_name = "ADDRESS")]
    pub ipv4: Vec<std::net::Ipv4Addr>,
    /// This server's public IPv6 address.
    #[arg(long, value_name = "ADDRESS")]
    pub ipv6: Vec<std::net::Ipv6Addr>,
    /// Look each record up and mark it ok, MISSING or DIFFERENT (with what
    /// is published); the exit status is 1 if any is not ok.
    #[arg(long)]
    pub check: bool,
    /// The resolver --check asks ("ip" or "ip:port"; default: the first
    /// nameserver of /etc/resolv.conf).
    #[arg(long, value_name = "ADDRESS", requires = "check")]
    pub nameserver: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ConfigAction {
    /// Parse and check the file; print "ok" or what is wrong.
    Check,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Development mode (the only mode so far): everything under DIR.
    #[arg(long, value_name = "DIR")]
    pub dev: PathBuf,
    /// Overwrite an existing setup's configuration.
    #[arg(long)]
    pub force: bool,
    /// Moves every port together: SMTP at BASE+525, submission +587,
    /// submissions +465, IMAP +143, IMAPS +993, POP3 +110, POP3S +995,
    /// LMTP +24, ManageSieve +22190 (2000 gives 2525, 2587, ..., 24190; so
    /// BASE is at most 43345).
    #[arg(long, value_name = "BASE", default_value_t = crate::init::DEV_PORT_BASE)]
    pub port_base: u16,
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Initialise DIR with `init --dev` if needed, then run with DIR/facteur.toml.
    #[arg(long, value_name = "DIR")]
    pub dev: Option<PathBuf>,
    /// With --dev, the port base of a new setup (see `init --port-base`).
    #[arg(long, value_name = "BASE", default_value_t = crate::init::DEV_PORT_BASE)]
    pub port_base: u16,
}

#[derive(Debug, Subcommand)]
pub enum DomainAction {
    Add { name: String },
    Del { name: String },
    List,
}

#[derive(Debug, Subcommand)]
pub enum UserAction {
    /// Create a user; the password comes from a prompt or standard input,
    /// or is an existing hash (`--hash`).
    Add {
        address: String,
        /// Quota in bytes or with a suffix ("1G"); default: store.default_quota_bytes.
        #[arg(long)]
        quota: Option<String>,
        /// Quota in messages; default: store.default_quota_messages.
        #[arg(long)]
        quota_messages: Option<u64>,
        /// A password hash from another server, kept as it is
        /// (`{SHA512-CRYPT}$6$...`, `$argon2id$...`, `{BLF-CRYPT}...`):
        /// the user keeps their password. SCRAM-SHA-256 works once the
        /// password is set again (its keys need the password).
        #[arg(long, value_name = "HASH")]
        hash: Option<String>,
    },
    /// Create the users of a Dovecot passwd-file (`user:{SCHEME}hash:...`,
    /// one per line), keeping their password hashes; `userdb_quota_rule=
    /// *:storage=SIZE` sets the quota. Users that exist are left alone.
    Import {
        file: std::path::PathBuf,
        /// The domain of names without one.
        #[arg(long)]
        domain: Option<String>,
    },
    /// Delete a user. Mail stays on disk unless --purge.
    Del {
        address: String,
        #[arg(long)]
        purge: bool,
    },
    /// Change a user's password (prompt or standard input).
    Passwd { address: String },
    /// List users, of one domain or all.
    List { domain: Option<String> },
    /// Show a user's quota and usage, or change the quota.
    Quota {
        address: String,
        #[arg(long)]
        bytes: Option<String>,
        #[arg(long)]
        messages: Option<u64>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AliasAction {
    /// Add one or more targets to SOURCE (`user@domain`, or `@domain` for a catch-all).
    Add {
        source: String,
        #[arg(required = true)]
        targets: Vec<String>,
    },
    /// Remove one target of SOURCE, or all of them.
    Del {
        source: String,
        target: Option<String>,
    },
    List {
        domain: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum QueueAction {
    /// Every queued message: id, queue, size, arrival, sender, recipients
    /// with their status and last reply (what `mailq` prints).
    List,
    /// One message: envelope, per-recipient status and last reply, header.
    Show { id: String },
    /// Try deferred messages now (one, or all); forgets destination backoff.
    Flush { id: Option<String> },
    /// Put a message on hold: nothing happens to it until released.
    Hold { id: String },
    /// Release a held message: it is delivered at once.
    Release { id: String },
    /// Delete messages (no bounce is sent).
    Delete {
        ids: Vec<String>,
        /// Delete every message from this envelope sender (`<>` for bounces).
        #[arg(long, value_name = "ADDR")]
        from: Option<String>,
    },
    /// Resolve a message's recipients again and try it at once.
    Requeue { id: String },
}

#[cfg(test)]
mod tests {
    /// clap's own checks of the whole command line (argument order,
    /// conflicts, names), which otherwise fire only when a command runs.
    #[test]
    fn command_line_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
