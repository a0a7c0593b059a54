//! The IMAP command tree: what the parser produces and the session consumes.
//!
//! Strings are already unquoted / de-literalised and valid UTF-8. Mailbox
//! names are given exactly as the client sent them (no modified UTF-7
//! decoding, no INBOX case folding): both depend on session state (ENABLE
//! UTF8=ACCEPT / IMAP4rev2), which the session owns.

/// One sequence number or UID bound; `*` is the largest in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqBound {
    Num(u32),
    Star,
}

/// A sequence set (`1:4,7,9:*`), or `$` (the saved SEARCHRES result).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SequenceSet {
    /// Ranges as written; `a:b` may have a > b (means the same as b:a).
    /// A single number `n` is `(Num(n), Num(n))`.
    Ranges(Vec<(SeqBound, SeqBound)>),
    /// `$` (RFC 5182).
    Saved,
}

/// A calendar date as in SEARCH SINCE / BEFORE (`1-Feb-2024`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Date {
    pub year: i32,
    /// 1..=12
    pub month: u8,
    /// 1..=31
    pub day: u8,
}

/// Everything SEARCH can ask (RFC 9051 §6.4.4, RFC 3501, RFC 7162 MODSEQ).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchKey {
    /// EMAILID / THREADID (OBJECTID, RFC 8474 §6).
    EmailId(String),
    ThreadId(String),
    /// Several keys in a row, or a parenthesised list: all must match.
    And(Vec<SearchKey>),
    All,
    Answered,
    Bcc(String),
    Before(Date),
    Body(String),
    Cc(String),
    Deleted,
    Draft,
    Flagged,
    From(String),
    /// Field name, value (empty value: the field exists).
    Header(String, String),
    Keyword(String),
    Larger(u64),
    New,
    Not(Box<SearchKey>),
    Old,
    On(Date),
    Or(Box<SearchKey>, Box<SearchKey>),
    Recent,
    Seen,
    SentBefore(Date),
    SentOn(Date),
    SentSince(Date),
    /// SAVEDBEFORE, SAVEDON, SAVEDSINCE and SAVEDATESUPPORTED (RFC 8514).
    SavedBefore(Date),
    SavedOn(Date),
    SavedSince(Date),
    SaveDateSupported,
    Since(Date),
    Smaller(u64),
    Subject(String),
    Text(String),
    To(String),
    Uid(SequenceSet),
    Unanswered,
    Undeleted,
    Undraft,
    Unflagged,
    Unkeyword(String),
    Unseen,
    /// A bare sequence set (message sequence numbers), `$` included.
    Seq(SequenceSet),
    /// MODSEQ n (entry name/type, if given, are parsed and ignored).
    ModSeq(u64),
}

/// SEARCH RETURN options (RFC 4731 ESEARCH, RFC 5182 SAVE, RFC 5267
/// CONTEXT=SEARCH, RFC 9394 PARTIAL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchReturn {
    Min,
    Max,
    All,
    Count,
    Save,
    /// `UPDATE`: keep the result and report its changes (ADDTO,
    /// REMOVEFROM) until CANCELUPDATE or the mailbox is left.
    Update,
    /// `PARTIAL first:last`: the results at these 1-based positions; both
    /// negative for positions from the end (-1 the last). Normalized so
    /// that `first` is the one nearer the end it counts from (`4:2` is
    /// `Partial(2, 4)`, `-5:-1` is `Partial(-1, -5)`).
    Partial(i64, i64),
}

/// How far below each entry GETMETADATA reaches (RFC 5464 §4.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MetadataDepth {
    /// The entries themselves.
    #[default]
    Zero,
    /// And their children.
    One,
    /// And everything below them.
    Infinity,
}

/// `NOTIFY SET [STATUS] groups` (RFC 5465 §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifySet {
    /// STATUS: say each watched mailbox's state at once.
    pub status: bool,
    pub groups: Vec<NotifyGroup>,
}

/// One event group: which mailboxes, and which of their events (empty:
/// NONE).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyGroup {
    pub filter: NotifyFilter,
    pub events: Vec<NotifyEvent>,
}

/// The mailboxes of an event group (RFC 5465 §6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotifyFilter {
    Selected,
    SelectedDelayed,
    Inboxes,
    Personal,
    Subscribed,
    /// These mailboxes and all below them.
    Subtree(Vec<String>),
    Mailboxes(Vec<String>),
}

/// An event of RFC 5465 §5.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotifyEvent {
    /// With the fetch attributes to send for each new message (selected
    /// mailbox only).
    MessageNew(Vec<FetchAttr>),
    MessageExpunge,
    FlagChange,
    AnnotationChange,
    MailboxName,
    SubscriptionChange,
    MailboxMetadataChange,
    ServerMetadataChange,
    /// An event this parser does not know (answered NO [BADEVENT]).
    Other(String),
}

/// A message of APPEND given as one literal (several with MULTIAPPEND,
/// RFC 3502).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendNext {
    pub flags: Vec<String>,
    /// Unix seconds, from the date-time with its zone applied.
    pub date: Option<i64>,
    pub literal: Literal,
}

/// An IMAP URL of a message or of a part of it (RFC 5092), as CATENATE
/// takes them ([`crate::parse_imap_url`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImapUrl {
    /// The user an absolute URL names (`imap://user@host/...`).
    pub user: Option<String>,
    /// The host of an absolute URL (port left out), as written.
    pub host: Option<String>,
    /// The mailbox name, percent-decoded (UTF-8, not modified UTF-7).
    pub mailbox: String,
    pub uidvalidity: Option<u32>,
    pub uid: u32,
    /// None: the whole message.
    pub section: Option<Section>,
    /// `PARTIAL=offset[.length]`.
    pub partial: Option<(u64, Option<u64>)>,
    /// `;EXPIRE=` (RFC 4467 §3), as unix seconds.
    pub expire: Option<i64>,
    /// `;URLAUTH=access[:mechanism:token]` (RFC 4467 §2).
    pub urlauth: Option<UrlAuth>,
}

/// The URLAUTH part of an IMAP URL (RFC 4467).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlAuth {
    /// Who may use the URL.
    pub access: UrlAccess,
    /// The URL up to and including the access identifier (the "rump" the
    /// token is computed over), exactly as written.
    pub rump: String,
    /// `mechanism` and `token` of an authorized URL; None in a rump.
    pub mechanism: Option<String>,
    pub token: Option<String>,
}

/// An access identifier (RFC 4467 §3): `user+` and `submit+` carry a
/// percent-decoded user name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlAccess {
    Anonymous,
    AuthUser,
    User(String),
    Submit(String),
}

/// One URL of URLFETCH: the URL alone (RFC 4467), or with the data items
/// of URLAUTH=BINARY (RFC 5524) asked in parentheses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlFetchItem {
    pub url: String,
    /// False: the plain form, answered with an nstring.
    pub extended: bool,
    pub body: bool,
    pub binary: bool,
    pub bodypartstructure: bool,
}

/// What one line of an APPEND says, in order. A line ends with a literal
/// ([`AppendStep::Message`] or [`AppendStep::Text`], always last) or with
/// the end of the command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppendStep {
    /// A message given as one literal.
    Message(AppendNext),
    /// A message put together from parts (CATENATE, RFC 4469): its flags
    /// and date; its parts follow, then [`AppendStep::EndCatenate`].
    Catenate {
        flags: Vec<String>,
        date: Option<i64>,
    },
    /// A part taken from a message in this server: an IMAP URL (RFC 5092),
    /// as sent.
    Url(String),
    /// A part sent as a literal (`TEXT`).
    Text(Literal),
    /// The `)` that ends a CATENATE's parts.
    EndCatenate,
}

/// A SORT key (RFC 5256 §3, DISPLAYFROM/DISPLAYTO RFC 5957).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    Arrival,
    Cc,
    Date,
    From,
    Size,
    Subject,
    To,
    DisplayFrom,
    DisplayTo,
}

/// One SORT criterion: a key, possibly REVERSE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SortCriterion {
    pub reverse: bool,
    pub key: SortKey,
}

/// THREAD algorithms (RFC 5256 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadAlgorithm {
    OrderedSubject,
    References,
}

/// The textual part of a `BODY[...]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SectionText {
    Header,
    /// Field names as sent (case kept for echoing; compare ignoring case).
    HeaderFields(Vec<String>),
    HeaderFieldsNot(Vec<String>),
    Text,
    /// Only after a part number.
    Mime,
}

/// `BODY[1.2.HEADER]` = part `[1, 2]`, text `Some(Header)`. `BODY[]` = empty.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Section {
    pub part: Vec<u32>,
    pub text: Option<SectionText>,
}

/// One FETCH data item. Macros (ALL, FAST, FULL) are expanded by the parser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchAttr {
    Envelope,
    Flags,
    InternalDate,
    /// RFC822 (= `BODY[]`, marks \Seen).
    Rfc822,
    /// RFC822.HEADER (= `BODY.PEEK[HEADER]`).
    Rfc822Header,
    Rfc822Size,
    /// RFC822.TEXT (= `BODY[TEXT]`, marks \Seen).
    Rfc822Text,
    /// BODY without a section: the non-extensible BODYSTRUCTURE.
    Body,
    BodyStructure,
    Uid,
    ModSeq,
    /// `BODY[section]<partial>` or `BODY.PEEK[...]`; partial = (offset, count).
    BodySection {
        peek: bool,
        section: Section,
        partial: Option<(u32, u32)>,
    },
    /// `BINARY[part]<partial>` / `BINARY.PEEK` (RFC 3516).
    Binary {
        peek: bool,
        part: Vec<u32>,
        partial: Option<(u32, u32)>,
    },
    /// `BINARY.SIZE[part]`.
    BinarySize(Vec<u32>),
    /// EMAILID and THREADID (OBJECTID, RFC 8474 §5).
    EmailId,
    ThreadId,
    /// SAVEDATE (RFC 8514): when the message was saved in this mailbox.
    SaveDate,
    /// `PREVIEW` or `PREVIEW (LAZY)` (RFC 8970): the same answer, the
    /// preview being computed at once either way.
    Preview,
}

/// `[UID] STORE set [(UNCHANGEDSINCE n)] [+|-]FLAGS[.SILENT] flags`
/// (RFC 9051 §6.4.6, RFC 7162 §3.1.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Store {
    pub uid: bool,
    pub set: SequenceSet,
    pub unchanged_since: Option<u64>,
    pub op: StoreOp,
    pub silent: bool,
    /// Flags as sent (`\Seen`, `$Forwarded`), backslash kept.
    pub flags: Vec<String>,
}

/// How STORE changes flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOp {
    Replace,
    Add,
    Remove,
}

/// STATUS data items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusItem {
    Messages,
    Recent,
    UidNext,
    UidValidity,
    Unseen,
    Deleted,
    Size,
    HighestModSeq,
    AppendLimit,
    /// MAILBOXID (OBJECTID, RFC 8474 §4).
    MailboxId,
}

/// QRESYNC parameters of SELECT/EXAMINE (RFC 7162 §3.2.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QresyncParams {
    pub uidvalidity: u32,
    pub modseq: u64,
    pub known_uids: Option<SequenceSet>,
    /// (known sequence numbers, their UIDs).
    pub seq_match: Option<(SequenceSet, SequenceSet)>,
}

/// LIST selection options (RFC 5258, RFC 6154).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ListSelect {
    pub subscribed: bool,
    pub remote: bool,
    pub recursive_match: bool,
    pub special_use: bool,
}

/// LIST return options (RFC 5258, RFC 5819, RFC 6154).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListReturn {
    pub subscribed: bool,
    pub children: bool,
    pub special_use: bool,
    /// RETURN (STATUS (...)).
    pub status: Option<Vec<StatusItem>>,
    /// RETURN (MYRIGHTS) (RFC 8440).
    pub myrights: bool,
}

/// The literal that ends an APPEND command line: the message itself, which
/// the session streams to disk instead of holding it in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Literal {
    pub len: u64,
    /// `{n}`: the client waits for a `+` continuation. `{n+}` (LITERAL+ /
    /// LITERAL-) is non-synchronising: the data follows at once.
    pub sync: bool,
    /// `~{n}` (RFC 3516 literal8): may contain NUL.
    pub binary: bool,
}

/// A command, by state group (RFC 9051 §6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    // Any state.
    Capability,
    Noop,
    Logout,
    /// ID (RFC 2971): None for NIL, else field/value pairs.
    Id(Option<Vec<(String, Option<String>)>>),

    // Not authenticated.
    StartTls,
    /// AUTHENTICATE mech [initial-response]. The initial response is decoded
    /// from base64 (`=` gives Some(empty)); None when absent.
    Authenticate {
        mechanism: String,
        initial: Option<Vec<u8>>,
    },
    Login {
        user: String,
        password: String,
    },

    // Authenticated.
    Enable(Vec<String>),
    /// SELECT or EXAMINE (`read_only`).
    Select {
        mailbox: String,
        read_only: bool,
        condstore: bool,
        qresync: Option<QresyncParams>,
    },
    Create {
        mailbox: String,
        /// CREATE box (USE (\Sent)): the attributes as sent.
        special_use: Vec<String>,
    },
    Delete(String),
    Rename {
        from: String,
        to: String,
    },
    Subscribe(String),
    Unsubscribe(String),
    /// LIST, extended or not. `patterns` has one element for plain LIST.
    List {
        reference: String,
        patterns: Vec<String>,
        select: ListSelect,
        ret: ListReturn,
    },
    Lsub {
        reference: String,
        pattern: String,
    },
    Namespace,
    Status {
        mailbox: String,
        items: Vec<StatusItem>,
    },
    /// APPEND box [(flags)] ["date-time"] {n}: the message literal follows
    /// (see [`Literal`]); the session reads `literal.len` octets, then the
    /// rest of the line (normally just CRLF).
    /// The steps of its first line (see [`AppendStep`]): a message, or a
    /// CATENATE's parts up to the first TEXT literal, or a whole CATENATE
    /// of URLs (then no literal follows the line).
    Append {
        mailbox: String,
        steps: Vec<AppendStep>,
    },
    Idle,
    GetQuota(String),
    GetQuotaRoot(String),
    /// SETQUOTA root (resource limit ...): parsed so it can be refused.
    SetQuota {
        root: String,
        limits: Vec<(String, u64)>,
    },
    Compress(String),
    /// SETACL mailbox identifier rights (RFC 4314 §3.1): `rights` as sent,
    /// with its `+` or `-`.
    SetAcl {
        mailbox: String,
        identifier: String,
        rights: String,
    },
    /// DELETEACL mailbox identifier (§3.2).
    DeleteAcl {
        mailbox: String,
        identifier: String,
    },
    /// GETACL mailbox (§3.3).
    GetAcl(String),
    /// LISTRIGHTS mailbox identifier (§3.4).
    ListRights {
        mailbox: String,
        identifier: String,
    },
    /// MYRIGHTS mailbox (§3.5).
    MyRights(String),
    /// GENURLAUTH (RFC 4467 §7.1): (URL rump, mechanism) pairs.
    GenUrlAuth(Vec<(String, String)>),
    /// URLFETCH (RFC 4467 §7.2, RFC 5524).
    UrlFetch(Vec<UrlFetchItem>),
    /// RESETKEY (RFC 4467 §7.3): one mailbox (and mechanisms), or all.
    ResetKey {
        mailbox: Option<String>,
        mechanisms: Vec<String>,
    },

    // Selected.
    Check,
    Close,
    Unselect,
    Expunge,
    /// UID EXPUNGE set (UIDPLUS).
    UidExpunge(SequenceSet),
    Search {
        uid: bool,
        /// Some for ESEARCH (`RETURN (...)`, possibly empty = ALL).
        ret: Option<Vec<SearchReturn>>,
        charset: Option<String>,
        key: SearchKey,
    },
    /// GETMETADATA (RFC 5464 §4.2): `mailbox` "" for the server's.
    GetMetadata {
        mailbox: String,
        /// MAXSIZE: longer values are left out (and counted).
        max_size: Option<u64>,
        depth: MetadataDepth,
        /// Entry names, lower-cased (they compare without case).
        entries: Vec<String>,
    },
    /// SETMETADATA (RFC 5464 §4.3): values to set, None to remove.
    SetMetadata {
        mailbox: String,
        entries: Vec<(String, Option<Vec<u8>>)>,
    },
    /// NOTIFY NONE (None) or NOTIFY SET (RFC 5465).
    Notify(Option<NotifySet>),
    /// CANCELUPDATE tag... (RFC 5267 §4.2): stop the updates of these
    /// searches.
    CancelUpdate(Vec<String>),
    /// SORT / UID SORT (RFC 5256), RETURN for ESORT (RFC 5267).
    Sort {
        uid: bool,
        ret: Option<Vec<SearchReturn>>,
        criteria: Vec<SortCriterion>,
        charset: String,
        key: SearchKey,
    },
    /// THREAD / UID THREAD (RFC 5256).
    Thread {
        uid: bool,
        algorithm: ThreadAlgorithm,
        charset: String,
        key: SearchKey,
    },
    Fetch {
        uid: bool,
        set: SequenceSet,
        attrs: Vec<FetchAttr>,
        /// CHANGEDSINCE modseq (RFC 7162).
        changed_since: Option<u64>,
        /// VANISHED (RFC 7162 QRESYNC, UID FETCH only).
        vanished: bool,
    },
    Store(Store),
    Copy {
        uid: bool,
        set: SequenceSet,
        mailbox: String,
    },
    Move {
        uid: bool,
        set: SequenceSet,
        mailbox: String,
    },
}

/// A tagged command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tagged {
    pub tag: String,
    pub command: Command,
}
