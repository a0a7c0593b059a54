//! The compiled form of a script: commands and tests with their arguments
//! checked and typed, ready for the interpreter ([`crate::run`]).

use crate::strings::Template;

/// A string list argument.
pub type List = Vec<Template>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparator {
    Octet,
    AsciiCasemap,
    AsciiNumeric,
    UnicodeCasemap,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelOp {
    Gt,
    Ge,
    Lt,
    Le,
    Eq,
    Ne,
}

#[derive(Debug, Clone, PartialEq)]
pub enum MatchKind {
    Is,
    Contains,
    Matches,
    Regex,
    Value(RelOp),
    Count(RelOp),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Match {
    pub cmp: Comparator,
    pub kind: MatchKind,
}

impl Default for Match {
    fn default() -> Match {
        Match {
            cmp: Comparator::AsciiCasemap,
            kind: MatchKind::Is,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AddrPart {
    #[default]
    All,
    LocalPart,
    Domain,
    User,
    Detail,
}

/// `:index N [:last]` (RFC 5260 §6), N from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Index {
    pub n: u64,
    pub last: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Zone {
    /// The local zone (the host's).
    Local,
    /// `:zone "+0100"`, in minutes east of UTC.
    Fixed(Template),
    /// `:originalzone`: the zone the date was written in.
    Original,
}

#[derive(Debug, Clone, PartialEq)]
pub enum BodyTransform {
    Raw,
    Content(List),
    Text,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Test {
    True,
    False,
    Not(Box<Test>),
    AllOf(Vec<Test>),
    AnyOf(Vec<Test>),
    Address {
        m: Match,
        part: AddrPart,
        index: Option<Index>,
        headers: List,
        keys: List,
        mime: Option<Box<MimeOpts>>,
    },
    Envelope {
        m: Match,
        part: AddrPart,
        fields: List,
        keys: List,
    },
    Header {
        m: Match,
        index: Option<Index>,
        names: List,
        keys: List,
        mime: Option<Box<MimeOpts>>,
    },
    Exists {
        names: List,
        mime: Option<Box<MimeOpts>>,
    },
    Size {
        over: bool,
        limit: u64,
    },
    Body {
        m: Match,
        transform: BodyTransform,
        keys: List,
    },
    Date {
        m: Match,
        index: Option<Index>,
        zone: Zone,
        header: Template,
        part: Template,
        keys: List,
    },
    CurrentDate {
        m: Match,
        zone: Zone,
        part: Template,
        keys: List,
    },
    HasFlag {
        m: Match,
        vars: Option<List>,
        keys: List,
    },
    String {
        m: Match,
        sources: List,
        keys: List,
    },
    MailboxExists(List),
    SpecialUseExists {
        mailbox: Option<Template>,
        uses: List,
    },
    Environment {
        m: Match,
        name: Template,
        keys: List,
    },
    Duplicate(Box<Duplicate>),
    /// `ihave` (RFC 5463): whether the named extensions are known; decided
    /// when the script was compiled.
    Ihave(bool),
    /// `valid_ext_list` and other tests a host adds (the test suite's).
    Custom(Box<Custom>),
}

/// The `:mime`/`:anychild` options of the mime extension (RFC 5703); only
/// parsed so far.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MimeOpts {
    pub anychild: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Duplicate {
    pub handle: Option<Template>,
    pub header: Option<Template>,
    pub uniqueid: Option<Template>,
    pub seconds: Option<u64>,
    pub last: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum FlagOp {
    Set,
    Add,
    Remove,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Vacation {
    /// The period in seconds (`:days` × 86400 or `:seconds`), None for the
    /// host's default.
    pub period: Option<u64>,
    pub subject: Option<Template>,
    pub from: Option<Template>,
    pub addresses: List,
    pub mime: bool,
    pub handle: Option<Template>,
    pub reason: Template,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Modifiers {
    /// lower (1) / upper (2) and lowerfirst (1) / upperfirst (2), 0 if none.
    pub case: u8,
    pub first: u8,
    pub quote_wildcard: bool,
    pub quote_regex: bool,
    pub length: bool,
    pub encode_url: bool,
}

/// A command or test the host implements (the Pigeonhole test suite's
/// `test_*` commands): its name and its arguments in order, with tags.
#[derive(Debug, Clone, PartialEq)]
pub struct Custom {
    pub name: String,
    pub args: Vec<CustomArg>,
    pub tests: Vec<Test>,
    pub block: Option<Vec<Cmd>>,
    pub line: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CustomArg {
    Tag(String),
    Number(u64),
    Strings(List),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Cmd {
    If {
        branches: Vec<(Test, Vec<Cmd>)>,
        otherwise: Option<Vec<Cmd>>,
    },
    Stop,
    Keep {
        flags: Option<List>,
    },
    Discard,
    FileInto {
        mailbox: Template,
        copy: bool,
        create: bool,
        flags: Option<List>,
        special_use: Option<Template>,
    },
    Redirect {
        address: Template,
        copy: bool,
    },
    Reject {
        reason: Template,
        extended: bool,
    },
    Vacation(Box<Vacation>),
    Flags {
        op: FlagOp,
        var: Option<Template>,
        flags: List,
    },
    Set {
        name: String,
        value: Template,
        mods: Modifiers,
    },
    AddHeader {
        last: bool,
        name: Template,
        value: Template,
    },
    DeleteHeader {
        index: Option<Index>,
        m: Match,
        name: Template,
        patterns: Option<List>,
    },
    Include {
        global: bool,
        once: bool,
        optional: bool,
        name: String,
    },
    Return,
    Global(Vec<String>),
    Error(Template),
    Custom(Box<Custom>),
}
