//! Versions and version ranges: the release versions uplift compares, and the
//! ranges plugin hooks select themselves with.
//!
//! One grammar covers the versions applications really ship: semver
//! (`1.0.0-beta.2+build.5`) and Python's PEP 440 (`0.15.0rc10`,
//! `0.15.0a5.dev0+git.682.g0be46de2`, `0.1.1.post1`), and one total order
//! covers them all, so that "which hooks run when the data moves from 0.14 to
//! 0.15.0rc1" has exactly one answer.
//!
//! # Versions
//!
//! ```text
//! version  = ["v" | "V"] [epoch "!"] release suffix ["+" build]
//! release  = number ("." number)*                 1, 0.15, 1.0.0, 1.2.3.4
//! suffix   = [pre] [post] [dev]                   PEP 440 style, or
//!          | "-" semver-pre-release               any other semver pre-release
//! pre      = [sep] ("a" | "alpha") [sep] [number] 1.0a1, 1.0-alpha.1
//!          | [sep] ("b" | "beta") [sep] [number]  1.0b2, 1.0.0-beta.2
//!          | [sep] ("rc" | "c" | "pre" | "preview") [sep] [number]
//! post     = [sep] ("post" | "rev" | "r") [sep] [number]   1.0.post1, 1.0-r2
//! dev      = [sep] "dev" [sep] [number]           1.1.1.dev0, 1.0.0-dev.3
//! sep      = "." | "-" | "_"
//! build    = parts of letters, digits, "-" and "_", separated by "."
//! ```
//!
//! - Numbers are decimal and at most 18446744073709551615 (`u64::MAX`);
//!   leading zeros are allowed (`01` is `1`). A missing pre, post or dev
//!   number is 0 (`1.0rc` is `1.0rc0`).
//! - Words are case-insensitive (`1.0RC1` is `1.0rc1`).
//! - Surrounding whitespace (including a trailing newline) is ignored.
//! - A semver pre-release that fits the PEP 440 words is read as one:
//!   `1.0.0-alpha.1` is `1.0.0a1`, `-beta.2` is `b2`, `-rc.1` is `rc1`,
//!   `-dev.3` is `.dev3`, and also `-pre.1` is `rc1`, `-post.1` and `-r1`
//!   are **post-releases**. Any other semver pre-release (`-x.7.z`, `-0.3.7`,
//!   `-snapshot`, `-alpha.beta`, `-1`) is kept as written and is an *other*
//!   pre-release. The PEP 440 reading applies only when the whole
//!   pre-release fits it: `-rc.1.2` and `-beta.x` are other pre-releases.
//!   PEP 440's implicit post-release `1.0-1` is therefore not supported:
//!   `1.0-1` is semver's pre-release `1`.
//! - Build metadata (`+build.5`) and PEP 440 local labels (`+git.682.g0be`)
//!   are the same thing here: kept, printed, and ignored by comparisons.
//!
//! # Order
//!
//! Versions compare by epoch (absent = 0), then by release numbers compared
//! numerically with trailing zeros ignored (`0.15` = `0.15.0` = `0.15.0.0`),
//! then, for the same release, by phase:
//!
//! | rank | phase | examples, lowest first |
//! |---|---|---|
//! | 1 | development release | `1.0.dev0` < `1.0.dev5` |
//! | 2 | other semver pre-release, by semver precedence | `1.0.0-0.3.7` < `1.0.0-alpha.beta` < `1.0.0-snapshot` < `1.0.0-x.7.z` |
//! | 3 | alpha | `1.0a1.dev0` < `1.0a1` < `1.0a1.post1.dev0` < `1.0a1.post1` < `1.0a2` |
//! | 4 | beta | `1.0b2` < `1.0.0-beta.11` |
//! | 5 | release candidate | `1.0rc9` < `1.0rc10` |
//! | 6 | final | `1.0` = `1.0.0` = `1.0.0+build.5` |
//! | 7 | post-release | `1.0.post1.dev0` < `1.0.post1` < `1.0.post2` |
//!
//! A pre-release's own `.devN` sits just below it, and a post-release's own
//! `.devN` just below that post-release, as in PEP 440. Numbers compare as
//! numbers (`rc10` > `rc9`). `Eq`, `Ord` and `Hash` agree: two versions are
//! equal exactly when [`Version::normalized`] gives the same text. The least
//! version of a release `X` is `X.dev0`.
//!
//! # Ranges
//!
//! ```text
//! range        = alternative ("||" alternative)*    OR
//! alternative  = "*" | "" | group ("," group)*      "," is AND
//! group        = comparator (whitespace comparator)*   whitespace is AND too
//! comparator   = [op] [whitespace] version | ["==" | "=" | "!="] wildcard | "*"
//! op           = "<" | "<=" | ">" | ">=" | "==" | "=" | "!=" | "^" | "~" | "~="
//! wildcard     = [epoch "!"] release ".*"           1.2.*
//! ```
//!
//! | written | means |
//! |---|---|
//! | `*`, empty | any version |
//! | `1.0`, `=1.0`, `==1.0` | equal to 1.0 (build metadata ignored) |
//! | `>=0.14.0, <0.16.0`, `>= 0.14 <0.16` | both |
//! | `<0.6.4 \|\| >=1.0` | either |
//! | `^1.2.3`, `^1.2`, `^1` | `>=1.2.3, <2.dev0`, `>=1.2, <2.dev0`, `>=1, <2.dev0` |
//! | `^0.2.3`, `^0.0.3`, `^0.0`, `^0` | `>=0.2.3, <0.3.dev0`, `>=0.0.3, <0.0.4.dev0`, `>=0.0, <0.1.dev0`, `>=0, <1.dev0` |
//! | `~1.2.3`, `~1.2`, `~1` | `>=1.2.3, <1.3.dev0`, `>=1.2, <1.3.dev0`, `>=1, <2.dev0` |
//! | `~=1.4.5`, `~=1.4` | `>=1.4.5, <1.5.dev0`, `>=1.4, <2.dev0` (at least two numbers) |
//! | `1.2.*`, `==1.2.*` | `>=1.2.dev0, <1.3.dev0`: every version of a 1.2 release |
//! | `!=1.2.*` | `<1.2.dev0 \|\| >=1.3.dev0` |
//!
//! Pre-releases match by plain ordering, unlike Cargo: `0.15.0a5` matches
//! `<0.15.0` and `1.1.1.dev0` matches `<1.1.1`; upgrade code needs this. The
//! upper bounds that `^`, `~`, `~=` and wildcards generate stop below *every*
//! pre-release of the bound (`<2.dev0`, the least version of release 2), so
//! `^1.2` does not match `2.0.0a1` and `1.2.*` matches `1.2.0rc1` but not
//! `1.3.0.dev0`. Caret and tilde look at the numbers as written (`^0.0` and
//! `^0.0.0` differ, as in Cargo); comparisons never do.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use semver::Prerelease;

/// An invalid version or range. The message quotes the text concerned and
/// says what was expected there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    /// The text is not a version.
    #[error("invalid version {text:?}: {reason}")]
    Version {
        /// The text given (trimmed).
        text: String,
        /// What is wrong, quoting the offending part.
        reason: String,
    },
    /// The text is not a version range.
    #[error("invalid range {text:?}: {reason}")]
    Range {
        /// The text given (trimmed).
        text: String,
        /// What is wrong, quoting the offending part.
        reason: String,
    },
}

/// A pre-release phase as parsed.
#[derive(Debug, Clone)]
enum Pre {
    Alpha(u64),
    Beta(u64),
    Rc(u64),
    /// Any other semver pre-release, ordered by semver precedence.
    Other(Prerelease),
}

/// A release version such as `1.0.0`, `0.15`, `1.0.0-beta.2+build.5`,
/// `0.15.0rc10` or `1.1.1.dev0`; see the [module documentation](self) for
/// the grammar and the order.
///
/// `Display` prints the version as given (trimmed, without a leading `v`);
/// [`Version::normalized`] prints a canonical form. Serde reads and writes
/// it as a string.
#[derive(Clone)]
pub struct Version(Box<Parts>);

/// What a version is made of (boxed, so that a `Version` is one pointer
/// wide and errors holding versions stay small).
#[derive(Debug, Clone)]
struct Parts {
    /// As given: trimmed, without a leading `v`.
    text: String,
    epoch: u64,
    release: Vec<u64>,
    pre: Option<Pre>,
    post: Option<u64>,
    dev: Option<u64>,
    build: Option<String>,
}

/// The phase part of the order key, lowest first.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum PhaseKey<'a> {
    /// `X.devN` with no pre- or post-release: below every pre-release.
    DevOnly,
    Other(&'a Prerelease),
    Alpha(u64),
    Beta(u64),
    Rc(u64),
    /// No pre-release (a final or post-release).
    Final,
}

/// The dev part of the order key: a dev release is below the same version
/// without one.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum DevKey {
    Dev(u64),
    NoDev,
}

/// The key `Eq`, `Ord` and `Hash` all use: epoch, release without trailing
/// zeros, phase, post number (none lowest), dev.
type OrderKey<'a> = (u64, &'a [u64], PhaseKey<'a>, Option<u64>, DevKey);

impl Version {
    /// Parses a version; see the [module documentation](self) for the
    /// grammar. Fails with [`VersionError::Version`] quoting the text and
    /// saying what was expected where it went wrong.
    ///
    /// ```
    /// use uplift_contract::version::Version;
    /// let rc = Version::parse("0.15.0rc10").unwrap();
    /// assert!(rc < Version::parse("0.15").unwrap());
    /// assert!(Version::parse("notaversion").is_err());
    /// ```
    pub fn parse(s: &str) -> Result<Version, VersionError> {
        let text = s.trim();
        parse_version(text).map_err(|reason| VersionError::Version {
            text: text.to_string(),
            reason,
        })
    }

    /// The canonical form: the epoch if not 0, the release without trailing
    /// zeros but with at least three numbers, then `aN`/`bN`/`rcN` or
    /// `-other`, `.postN`, `.devN`; no leading zeros, no build metadata.
    /// Two versions are equal exactly when their normalised forms are equal,
    /// and the normalised form parses back to an equal version.
    ///
    /// ```
    /// use uplift_contract::version::Version;
    /// let v = Version::parse("v0.15-RC.1+git.5").unwrap();
    /// assert_eq!(v.normalized(), "0.15.0rc1");
    /// ```
    pub fn normalized(&self) -> String {
        let mut out = String::new();
        if self.0.epoch != 0 {
            out.push_str(&format!("{}!", self.0.epoch));
        }
        let release = strip_trailing_zeros(&self.0.release);
        let numbers: Vec<String> = (0..release.len().max(3))
            .map(|i| release.get(i).copied().unwrap_or(0).to_string())
            .collect();
        out.push_str(&numbers.join("."));
        match &self.0.pre {
            None => {}
            Some(Pre::Alpha(n)) => out.push_str(&format!("a{n}")),
            Some(Pre::Beta(n)) => out.push_str(&format!("b{n}")),
            Some(Pre::Rc(n)) => out.push_str(&format!("rc{n}")),
            Some(Pre::Other(p)) => out.push_str(&format!("-{p}")),
        }
        if let Some(n) = self.0.post {
            out.push_str(&format!(".post{n}"));
        }
        if let Some(n) = self.0.dev {
            out.push_str(&format!(".dev{n}"));
        }
        out
    }

    /// The epoch: the number before `!` (`1` in `1!2.0`), 0 when absent.
    pub fn epoch(&self) -> u64 {
        self.0.epoch
    }

    /// The release numbers as written (`[0, 15]` for `0.15`, `[0, 15, 0]`
    /// for `0.15.0rc1`); comparisons ignore trailing zeros.
    pub fn release(&self) -> &[u64] {
        &self.0.release
    }

    /// Whether this is a pre-release or development release (it sorts
    /// below the final release of its numbers): `1.0a1`, `1.0.0-beta.2`,
    /// `1.0.dev0`, `1.0.post1.dev0`.
    pub fn is_prerelease(&self) -> bool {
        self.0.pre.is_some() || self.0.dev.is_some()
    }

    /// The build metadata or local label after `+`, if any (`git.682.g0be`
    /// in `0.15.0a5.dev0+git.682.g0be`). It never affects comparisons.
    pub fn build(&self) -> Option<&str> {
        self.0.build.as_deref()
    }

    /// The least version of release `release` in epoch `epoch`:
    /// `release.dev0`. Nothing with the same epoch and release numbers sorts
    /// below it, so `< lowest_of(2)` excludes every pre-release of 2.
    fn lowest_of(epoch: u64, release: Vec<u64>) -> Version {
        let mut v = Version(Box::new(Parts {
            text: String::new(),
            epoch,
            release,
            pre: None,
            post: None,
            dev: Some(0),
            build: None,
        }));
        v.0.text = v.normalized();
        v
    }

    fn key(&self) -> OrderKey<'_> {
        let phase = match (&self.0.pre, self.0.post, self.0.dev) {
            (None, None, Some(_)) => PhaseKey::DevOnly,
            (None, _, _) => PhaseKey::Final,
            (Some(Pre::Other(p)), _, _) => PhaseKey::Other(p),
            (Some(Pre::Alpha(n)), _, _) => PhaseKey::Alpha(*n),
            (Some(Pre::Beta(n)), _, _) => PhaseKey::Beta(*n),
            (Some(Pre::Rc(n)), _, _) => PhaseKey::Rc(*n),
        };
        let dev = match self.0.dev {
            Some(n) => DevKey::Dev(n),
            None => DevKey::NoDev,
        };
        (
            self.0.epoch,
            strip_trailing_zeros(&self.0.release),
            phase,
            self.0.post,
            dev,
        )
    }
}

/// `release` without its trailing zeros. Comparing such slices
/// lexicographically is comparing the releases padded with zeros.
fn strip_trailing_zeros(release: &[u64]) -> &[u64] {
    let len = release.iter().rposition(|&n| n != 0).map_or(0, |i| i + 1);
    &release[..len]
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.text)
    }
}

impl fmt::Debug for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Version").field(&self.0.text).finish()
    }
}

impl FromStr for Version {
    type Err = VersionError;
    fn from_str(s: &str) -> Result<Version, VersionError> {
        Version::parse(s)
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Version {}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(&other.key())
    }
}

impl Hash for Version {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

impl serde::Serialize for Version {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.text)
    }
}

impl<'de> serde::Deserialize<'de> for Version {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Version, D::Error> {
        let text = String::deserialize(d)?;
        Version::parse(&text).map_err(serde::de::Error::custom)
    }
}

// ---------------------------------------------------------------------------
// Version parsing. Every function returns the reason as a `String`; the
// public entry points wrap it in a `VersionError` quoting the whole text.
// Positions only ever advance over ASCII bytes, so every slice is on a
// character boundary whatever the input.

/// A pre-release word and the phase it stands for.
type PreWord = (&'static str, fn(u64) -> Pre);

const PRE_WORDS: &[PreWord] = &[
    ("preview", Pre::Rc),
    ("alpha", Pre::Alpha),
    ("beta", Pre::Beta),
    ("pre", Pre::Rc),
    ("rc", Pre::Rc),
    ("a", Pre::Alpha),
    ("b", Pre::Beta),
    ("c", Pre::Rc),
];
const POST_WORDS: &[&str] = &["post", "rev", "r"];
const DEV_WORDS: &[&str] = &["dev"];

fn is_sep(b: u8) -> bool {
    matches!(b, b'.' | b'-' | b'_')
}

/// Reads the digits at `pos` (there must be at least one) as a number.
fn read_number(s: &str, pos: usize) -> Result<(u64, usize), String> {
    let end = s.as_bytes()[pos..]
        .iter()
        .position(|b| !b.is_ascii_digit())
        .map_or(s.len(), |i| pos + i);
    let digits = &s[pos..end];
    let n = digits.parse::<u64>().map_err(|_| {
        format!(
            "number {digits:?} is too large (the largest is {})",
            u64::MAX
        )
    })?;
    Ok((n, end))
}

fn digit_at(s: &str, pos: usize) -> bool {
    s.as_bytes().get(pos).is_some_and(u8::is_ascii_digit)
}

fn parse_version(text: &str) -> Result<Version, String> {
    let body = text.strip_prefix(['v', 'V']).unwrap_or(text);
    if !digit_at(body, 0) {
        return Err("expected digits such as 1.0.0".to_string());
    }
    let (first, mut pos) = read_number(body, 0)?;
    let mut epoch = 0;
    let mut release = vec![first];
    if body.as_bytes().get(pos) == Some(&b'!') {
        epoch = first;
        pos += 1;
        if !digit_at(body, pos) {
            return Err(format!(
                "expected release numbers such as 1.0 after the epoch {:?}",
                &body[..pos]
            ));
        }
        let (n, end) = read_number(body, pos)?;
        release = vec![n];
        pos = end;
    }
    while body.as_bytes().get(pos) == Some(&b'.') && digit_at(body, pos + 1) {
        let (n, end) = read_number(body, pos + 1)?;
        release.push(n);
        pos = end;
    }
    let numbers = &body[..pos];
    let rest = &body[pos..];
    let (public, build) = match rest.split_once('+') {
        Some((public, build)) => (public, Some(build)),
        None => (rest, None),
    };

    let (pre, post, dev) = if public.is_empty() {
        (None, None, None)
    } else if let Some(suffix) = pep440_suffix(public)? {
        suffix
    } else if let Some(semver_pre) = public.strip_prefix('-') {
        if semver_pre.is_empty() {
            return Err(format!(
                "expected a pre-release such as -beta.2 after {numbers:?}"
            ));
        }
        match Prerelease::new(semver_pre) {
            Ok(p) => (Some(Pre::Other(p)), None, None),
            Err(e) => {
                return Err(format!(
                    "{public:?} is neither a PEP 440 suffix (a1, b2, rc1, .post1, .dev1) \
                     nor a semver pre-release ({e})"
                ));
            }
        }
    } else {
        return Err(format!(
            "unexpected {public:?} after {numbers:?}: expected a pre-release \
             (a1, b2, rc1, -beta.2), .postN, .devN or +build"
        ));
    };

    if let Some(build) = build {
        let valid = !build.is_empty()
            && build.split('.').all(|part| {
                !part.is_empty()
                    && part
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            });
        if !valid {
            return Err(format!(
                "expected build metadata such as +build.5 after \"+\", found {:?} \
                 (letters, digits, '-' and '_' in parts separated by '.')",
                format!("+{build}")
            ));
        }
    }

    Ok(Version(Box::new(Parts {
        text: body.to_string(),
        epoch,
        release,
        pre,
        post,
        dev,
        build: build.map(str::to_string),
    })))
}

/// The PEP 440 words at `pos` (after an optional separator): the longest of
/// `words` found there, case-insensitively, and the position after it.
fn word_at<'w>(s: &str, pos: usize, words: &[&'w str]) -> Option<(&'w str, usize)> {
    let bytes = s.as_bytes();
    let start = if bytes.get(pos).copied().is_some_and(is_sep) {
        pos + 1
    } else {
        pos
    };
    words.iter().find_map(|w| {
        let end = start + w.len();
        let candidate = bytes.get(start..end)?;
        candidate
            .eq_ignore_ascii_case(w.as_bytes())
            .then_some((*w, end))
    })
}

/// The optional number after a PEP 440 word (after an optional separator,
/// taken only when digits follow it); 0 when absent.
fn number_after_word(s: &str, pos: usize) -> Result<(u64, usize), String> {
    if digit_at(s, pos) {
        read_number(s, pos)
    } else if s.as_bytes().get(pos).copied().is_some_and(is_sep) && digit_at(s, pos + 1) {
        read_number(s, pos + 1)
    } else {
        Ok((0, pos))
    }
}

type Suffix = (Option<Pre>, Option<u64>, Option<u64>);

/// Reads `suffix` (non-empty, without build metadata) as PEP 440
/// `[pre][post][dev]`. `Ok(None)` when it is not one (it may still be a
/// semver pre-release); `Err` only for a number too large.
///
/// The greedy reading is unambiguous: no post or dev word starts with a
/// pre-release word, and the words are tried longest first.
fn pep440_suffix(suffix: &str) -> Result<Option<Suffix>, String> {
    let mut pos = 0;
    let pre_words: Vec<&str> = PRE_WORDS.iter().map(|(w, _)| *w).collect();
    let mut pre = None;
    if let Some((word, end)) = word_at(suffix, pos, &pre_words) {
        let (n, end) = number_after_word(suffix, end)?;
        let make = PRE_WORDS
            .iter()
            .find(|(w, _)| *w == word)
            .map(|(_, make)| *make)
            .ok_or_else(|| format!("internal error: unknown word {word:?}"))?;
        pre = Some(make(n));
        pos = end;
    }
    let mut post = None;
    if let Some((_, end)) = word_at(suffix, pos, POST_WORDS) {
        let (n, end) = number_after_word(suffix, end)?;
        post = Some(n);
        pos = end;
    }
    let mut dev = None;
    if let Some((_, end)) = word_at(suffix, pos, DEV_WORDS) {
        let (n, end) = number_after_word(suffix, end)?;
        dev = Some(n);
        pos = end;
    }
    Ok((pos == suffix.len()).then_some((pre, post, dev)))
}

// ---------------------------------------------------------------------------
// Ranges.

/// One condition on a version, after caret, tilde, `~=` and wildcards have
/// been turned into bounds.
#[derive(Debug, Clone)]
enum Comparator {
    Less(Version),
    LessEq(Version),
    Greater(Version),
    GreaterEq(Version),
    Equal(Version),
    NotEqual(Version),
    /// Below `low` or, if there is a `high`, at or above it (`!=1.2.*`).
    Outside {
        low: Version,
        high: Option<Version>,
    },
}

impl Comparator {
    fn matches(&self, v: &Version) -> bool {
        match self {
            Comparator::Less(b) => v < b,
            Comparator::LessEq(b) => v <= b,
            Comparator::Greater(b) => v > b,
            Comparator::GreaterEq(b) => v >= b,
            Comparator::Equal(b) => v == b,
            Comparator::NotEqual(b) => v != b,
            Comparator::Outside { low, high } => {
                v < low || high.as_ref().is_some_and(|high| v >= high)
            }
        }
    }

    fn lower_bound(&self) -> LowerBound {
        match self {
            Comparator::Greater(b) => LowerBound::Exclusive(b.clone()),
            Comparator::GreaterEq(b) | Comparator::Equal(b) => LowerBound::Inclusive(b.clone()),
            Comparator::Less(_)
            | Comparator::LessEq(_)
            | Comparator::NotEqual(_)
            | Comparator::Outside { .. } => LowerBound::Unbounded,
        }
    }
}

/// The operators a comparator may start with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Less,
    LessEq,
    Greater,
    GreaterEq,
    Equal,
    NotEqual,
    Caret,
    Tilde,
    Compatible,
}

/// Operators, longest spelling first.
const OPERATORS: &[(&str, Op)] = &[
    ("~=", Op::Compatible),
    ("<=", Op::LessEq),
    (">=", Op::GreaterEq),
    ("==", Op::Equal),
    ("!=", Op::NotEqual),
    ("<", Op::Less),
    (">", Op::Greater),
    ("=", Op::Equal),
    ("^", Op::Caret),
    ("~", Op::Tilde),
];

/// A set of versions such as `>=0.14.0, <0.16.0`, `^1.2 || 2.*` or `*`;
/// see the [module documentation](self) for the grammar.
///
/// `Display` prints the range as given (trimmed). Serde reads and writes it
/// as a string.
#[derive(Debug, Clone)]
pub struct VersionRange {
    text: String,
    /// OR of ANDs; an empty AND matches every version.
    alternatives: Vec<Vec<Comparator>>,
}

/// Where a range starts: the sort key that orders hooks ("by the lower bound
/// of old_version, then of new_version"). Unbounded sorts first; between two
/// bounds at the same version, inclusive (`>=1.0`) sorts before exclusive
/// (`>1.0`).
#[derive(Debug, Clone)]
pub enum LowerBound {
    /// Every version below some point matches (`<2.0`, `*`, `!=1.0`).
    Unbounded,
    /// Starts at this version, included (`>=1.0`, `==1.0`, `^1.0`).
    Inclusive(Version),
    /// Starts just above this version (`>1.0`).
    Exclusive(Version),
}

impl LowerBound {
    fn rank(&self) -> (u8, Option<&Version>, u8) {
        match self {
            LowerBound::Unbounded => (0, None, 0),
            LowerBound::Inclusive(v) => (1, Some(v), 0),
            LowerBound::Exclusive(v) => (1, Some(v), 1),
        }
    }
}

impl PartialEq for LowerBound {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for LowerBound {}

impl PartialOrd for LowerBound {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for LowerBound {
    fn cmp(&self, other: &Self) -> Ordering {
        self.rank().cmp(&other.rank())
    }
}

impl fmt::Display for LowerBound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LowerBound::Unbounded => f.write_str("unbounded"),
            LowerBound::Inclusive(v) => write!(f, ">={v}"),
            LowerBound::Exclusive(v) => write!(f, ">{v}"),
        }
    }
}

impl VersionRange {
    /// Parses a range; see the [module documentation](self) for the
    /// grammar. Fails with [`VersionError::Range`] quoting the range and the
    /// offending part, and saying what was expected there.
    ///
    /// ```
    /// use uplift_contract::version::{Version, VersionRange};
    /// let range = VersionRange::parse(">=0.14.0, <0.16.0").unwrap();
    /// assert!(range.matches(&Version::parse("0.15.0rc1").unwrap()));
    /// let err = VersionRange::parse("1.0,,2.0").unwrap_err();
    /// assert_eq!(err.to_string(), r#"invalid range "1.0,,2.0": empty comparator between commas"#);
    /// ```
    pub fn parse(s: &str) -> Result<VersionRange, VersionError> {
        let text = s.trim();
        parse_range(text)
            .map(|alternatives| VersionRange {
                text: text.to_string(),
                alternatives,
            })
            .map_err(|reason| VersionError::Range {
                text: text.to_string(),
                reason,
            })
    }

    /// The range that matches every version (written `*`).
    pub fn any() -> VersionRange {
        VersionRange {
            text: "*".to_string(),
            alternatives: vec![Vec::new()],
        }
    }

    /// Whether the range is written to match every version: `*`, empty, or
    /// an alternative that is `*` (`1.0 || *`). Ranges that happen to
    /// cover everything without saying so (`<1 || >=1`) are not.
    pub fn is_any(&self) -> bool {
        self.alternatives.iter().any(Vec::is_empty)
    }

    /// Whether `version` is in the range. Pre-releases match by plain
    /// ordering: `0.15.0a5` matches `<0.15.0`.
    pub fn matches(&self, version: &Version) -> bool {
        self.alternatives
            .iter()
            .any(|all| all.iter().all(|c| c.matches(version)))
    }

    /// Where the range starts, as a sort key: the highest lower bound among
    /// the comparators of an alternative, and the lowest among alternatives.
    pub fn lower_bound(&self) -> LowerBound {
        self.alternatives
            .iter()
            .map(|all| {
                all.iter()
                    .map(Comparator::lower_bound)
                    .max()
                    .unwrap_or(LowerBound::Unbounded)
            })
            .min()
            .unwrap_or(LowerBound::Unbounded)
    }
}

impl Default for VersionRange {
    /// Every version: [`VersionRange::any`].
    fn default() -> VersionRange {
        VersionRange::any()
    }
}

impl fmt::Display for VersionRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for VersionRange {
    type Err = VersionError;
    fn from_str(s: &str) -> Result<VersionRange, VersionError> {
        VersionRange::parse(s)
    }
}

impl serde::Serialize for VersionRange {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> serde::Deserialize<'de> for VersionRange {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<VersionRange, D::Error> {
        let text = String::deserialize(d)?;
        VersionRange::parse(&text).map_err(serde::de::Error::custom)
    }
}

fn parse_range(text: &str) -> Result<Vec<Vec<Comparator>>, String> {
    if text.is_empty() {
        return Ok(vec![Vec::new()]);
    }
    let alternatives: Vec<&str> = text.split("||").collect();
    let last = alternatives.len() - 1;
    let mut out = Vec::with_capacity(alternatives.len());
    for (i, alternative) in alternatives.iter().enumerate() {
        let alternative = alternative.trim();
        if alternative.is_empty() {
            return Err(if i == 0 {
                "empty alternative before \"||\"".to_string()
            } else if i == last {
                "empty alternative after \"||\"".to_string()
            } else {
                "empty alternative between \"||\" and \"||\"".to_string()
            });
        }
        out.push(parse_alternative(alternative)?);
    }
    Ok(out)
}

/// Reads the comma-separated groups of one alternative (non-empty, trimmed).
fn parse_alternative(alternative: &str) -> Result<Vec<Comparator>, String> {
    let groups: Vec<&str> = alternative.split(',').collect();
    let last = groups.len() - 1;
    let mut out = Vec::new();
    for (i, group) in groups.iter().enumerate() {
        let group = group.trim();
        if group.is_empty() {
            return Err(if i == 0 {
                "empty comparator before the first comma".to_string()
            } else if i == last {
                "empty comparator after the last comma".to_string()
            } else {
                "empty comparator between commas".to_string()
            });
        }
        parse_group(group, &mut out)?;
    }
    Ok(out)
}

/// Reads whitespace-separated comparators (`>=1.0 <2.0`, `>= 1.0`).
fn parse_group(group: &str, out: &mut Vec<Comparator>) -> Result<(), String> {
    let mut rest = group.trim_start();
    while !rest.is_empty() {
        let op = OPERATORS
            .iter()
            .find(|(spelling, _)| rest.starts_with(spelling));
        let after = match op {
            Some((spelling, _)) => rest[spelling.len()..].trim_start(),
            None => rest,
        };
        let end = after.find(char::is_whitespace).unwrap_or(after.len());
        let token = &after[..end];
        rest = after[end..].trim_start();

        if token.starts_with('|') || (op.is_none() && token.contains('|')) {
            return Err(format!(
                "{token:?}: a single \"|\" is not an operator; write || for OR"
            ));
        }
        match op {
            Some((spelling, _)) if token.is_empty() => {
                return Err(format!("expected a version after {spelling:?}"));
            }
            Some((spelling, _)) if token.starts_with(['<', '>', '=', '!', '^', '~']) => {
                return Err(format!(
                    "expected a version after {spelling:?}, found {token:?}"
                ));
            }
            None if token.starts_with(['!', '<', '>', '=', '^', '~']) => {
                return Err(format!(
                    "unknown operator in {token:?}: expected one of <, <=, >, >=, ==, =, !=, ^, ~, ~="
                ));
            }
            _ => {}
        }
        parse_comparator(op.map(|(spelling, op)| (*spelling, *op)), token, out)?;
    }
    Ok(())
}

/// Turns one operator and version (or wildcard) into comparators.
fn parse_comparator(
    op: Option<(&str, Op)>,
    token: &str,
    out: &mut Vec<Comparator>,
) -> Result<(), String> {
    let spelling = op.map_or("", |(s, _)| s);
    if token == "*" {
        return match op {
            None => Ok(()),
            Some(_) => Err(format!(
                "\"*\" alone means any version and takes no operator, found {:?}",
                format!("{spelling}{token}")
            )),
        };
    }
    if token.contains('*') {
        return parse_wildcard(op, spelling, token, out);
    }
    let v =
        parse_version(token).map_err(|reason| format!("{token:?} is not a version: {reason}"))?;
    let Some((_, op)) = op else {
        out.push(Comparator::Equal(v));
        return Ok(());
    };
    let epoch = v.0.epoch;
    let written = v.0.release.clone();
    let upper_at = match op {
        Op::Less => return push(out, Comparator::Less(v)),
        Op::LessEq => return push(out, Comparator::LessEq(v)),
        Op::Greater => return push(out, Comparator::Greater(v)),
        Op::GreaterEq => return push(out, Comparator::GreaterEq(v)),
        Op::Equal => return push(out, Comparator::Equal(v)),
        Op::NotEqual => return push(out, Comparator::NotEqual(v)),
        // ^: the first non-zero number written, or the last one if all are 0.
        Op::Caret => written
            .iter()
            .position(|&n| n != 0)
            .unwrap_or(written.len() - 1),
        // ~: the minor number if written, else the major.
        Op::Tilde => written.len().min(2) - 1,
        // ~=: all but the last number stay fixed.
        Op::Compatible => {
            if written.len() < 2 {
                return Err(format!(
                    "\"~={token}\" needs at least two release numbers, as in ~=1.4 or ~=1.4.5"
                ));
            }
            written.len() - 2
        }
    };
    out.push(Comparator::GreaterEq(v));
    out.extend(above_series(epoch, &written[..=upper_at]).map(Comparator::Less));
    Ok(())
}

fn push(out: &mut Vec<Comparator>, c: Comparator) -> Result<(), String> {
    out.push(c);
    Ok(())
}

/// `1.2.*`, `==1.2.*`, `!=1.2.*`: every version whose release starts with
/// the numbers before `.*`, or every other version.
fn parse_wildcard(
    op: Option<(&str, Op)>,
    spelling: &str,
    token: &str,
    out: &mut Vec<Comparator>,
) -> Result<(), String> {
    let prefix = match token.strip_suffix(".*") {
        Some(prefix) if !prefix.contains('*') => prefix,
        _ => {
            return Err(format!(
                "\"*\" must be last and follow a dot, as in 1.2.*; found {token:?}"
            ));
        }
    };
    let v = parse_version(prefix)
        .map_err(|reason| format!("{prefix:?} before \".*\" is not a version: {reason}"))?;
    if v.0.pre.is_some() || v.0.post.is_some() || v.0.dev.is_some() || v.0.build.is_some() {
        return Err(format!(
            "a wildcard follows release numbers only, as in 1.2.*; found {token:?}"
        ));
    }
    let low = Version::lowest_of(v.0.epoch, v.0.release.clone());
    let high = above_series(v.0.epoch, &v.0.release);
    match op.map(|(_, op)| op) {
        None | Some(Op::Equal) => {
            out.push(Comparator::GreaterEq(low));
            out.extend(high.map(Comparator::Less));
            Ok(())
        }
        Some(Op::NotEqual) => push(out, Comparator::Outside { low, high }),
        Some(_) => Err(format!(
            "wildcards go with == or != only, found {:?}",
            format!("{spelling}{token}")
        )),
    }
}

/// The least version above every version of epoch `epoch` whose release
/// starts with `prefix`: `prefix` with its last number plus one (`1.2` →
/// `1.3.dev0`), carrying past `u64::MAX` (`1.MAX` → `2.dev0`, since no
/// release `1.(MAX+1)` exists). When every number is `u64::MAX`, nothing of
/// the epoch is above the series, and the bound is the least version of the
/// next epoch (`(epoch+1)!0.dev0`); `None` only when the epoch is
/// `u64::MAX` too: nothing at all is above.
fn above_series(epoch: u64, prefix: &[u64]) -> Option<Version> {
    let mut next = prefix.to_vec();
    while next.last() == Some(&u64::MAX) {
        next.pop();
    }
    match next.last_mut() {
        Some(last) => {
            *last += 1;
            Some(Version::lowest_of(epoch, next))
        }
        None => Some(Version::lowest_of(epoch.checked_add(1)?, vec![0])),
    }
}
