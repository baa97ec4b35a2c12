//! The syntax of uplift versions and version ranges, checked without any
//! dependency so that the SDK's procedural macros can reject a bad range at
//! compile time.
//!
//! This crate only answers "would uplift accept this text?" and, when not,
//! "which part is wrong?". It does not order versions or match ranges: the
//! host (`uplift::version`) does that at upgrade time. The grammar is the
//! host's; `tests/agrees_with_host.rs` checks that both accept and refuse the
//! same strings.
//!
//! ```
//! use uplift_hooks_sdk_ranges::{check_range, check_version};
//!
//! assert!(check_version("0.15.0rc10").is_ok());
//! assert!(check_range(">=0.14.0, <0.16.0 || ^2.1").is_ok());
//! let err = check_range("<<1.0").unwrap_err();
//! assert_eq!(err.part, "<<1.0");
//! ```
//!
//! # Versions
//!
//! An optional `v`, then one or more dot-separated numbers (`1`, `0.15`,
//! `1.0.0`), then in this order and each optional:
//!
//! - a pre-release: semver's `-` followed by dot-separated identifiers of
//!   ASCII letters, digits and `-` (`-beta.2`), or Python's `a`, `b` or `rc`
//!   followed by a number (`a5`, `rc10`), optionally after a `.` or `-`;
//! - Python's `.postN`;
//! - Python's `.devN`;
//! - build metadata: `+` followed by dot-separated identifiers of ASCII
//!   letters, digits and `-` (`+git.682.g0be46de2`).
//!
//! Whitespace around the version is ignored.
//!
//! # Ranges
//!
//! Alternatives joined by `||` (OR); each alternative is comparators joined by
//! `,` (AND). `*` or empty text means any version. A comparator is one of `<`,
//! `<=`, `>`, `>=`, `==`, `=`, `!=`, `^`, `~` followed by a version, or a
//! wildcard version such as `1.2.*` (optionally after `=`, `==` or `!=`), or
//! a bare version (exactly that version).

use std::fmt;

/// Text that is not a valid version or range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// The offending part of the input, as written (trimmed).
    pub part: String,
    /// What is wrong with it, for people.
    pub reason: &'static str,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid version {:?}: {}", self.part, self.reason)
    }
}

impl std::error::Error for SyntaxError {}

fn error(part: &str, reason: &'static str) -> SyntaxError {
    SyntaxError {
        part: part.trim().to_string(),
        reason,
    }
}

/// Checks that `text` is a version uplift understands (`1.0.0`, `0.15`,
/// `1.0.0-beta.2`, `0.15.0a5.dev0+git.682.g0be46de2`, `v2.1`).
///
/// Fails with the offending text and the reason when it is not.
pub fn check_version(text: &str) -> Result<(), SyntaxError> {
    check_version_inner(text, false)
}

/// Checks that `text` is a version range uplift understands
/// (`<0.6.4`, `>=0.14.0, <0.16.0`, `^1.2 || ~2.0.1`, `1.2.*`, `*`).
///
/// Fails with the offending comparator (or the whole range) and the reason
/// when it is not.
pub fn check_range(text: &str) -> Result<(), SyntaxError> {
    let trimmed = text.trim();
    if trimmed.is_empty() || trimmed == "*" {
        return Ok(());
    }
    for alternative in trimmed.split("||") {
        let alternative = alternative.trim();
        if alternative.is_empty() {
            return Err(error(trimmed, "empty alternative around `||`"));
        }
        if alternative == "*" {
            continue;
        }
        for comparator in alternative.split(',') {
            check_comparator(comparator, alternative)?;
        }
    }
    Ok(())
}

fn check_comparator(comparator: &str, alternative: &str) -> Result<(), SyntaxError> {
    let c = comparator.trim();
    if c.is_empty() {
        return Err(error(alternative, "empty comparator between commas"));
    }
    let (op, rest) = split_operator(c);
    let rest = rest.trim_start();
    if rest.is_empty() {
        return Err(error(c, "an operator needs a version after it"));
    }
    if rest.starts_with(['<', '>', '=', '!', '^', '~']) {
        return Err(error(c, "one operator per comparator"));
    }
    if rest.ends_with(".*") || rest == "*" {
        return match op {
            "" | "=" | "==" | "!=" => {
                check_version_inner(rest, true).map_err(|e| error(c, e.reason))
            }
            _ => Err(error(
                c,
                "a wildcard version takes no operator but `=`, `==` or `!=`",
            )),
        };
    }
    check_version_inner(rest, false).map_err(|e| error(c, e.reason))
}

fn split_operator(c: &str) -> (&str, &str) {
    for op in ["<=", ">=", "==", "!=", "<", ">", "=", "^", "~"] {
        if let Some(rest) = c.strip_prefix(op) {
            return (op, rest);
        }
    }
    ("", c)
}

/// A tiny cursor over the bytes of a version.
struct Scanner<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }
    fn peek_at(&self, n: usize) -> Option<u8> {
        self.bytes.get(self.at + n).copied()
    }
    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.at += 1;
            true
        } else {
            false
        }
    }
    fn eat_str(&mut self, s: &str) -> bool {
        if self.bytes[self.at..].starts_with(s.as_bytes()) {
            self.at += s.len();
            true
        } else {
            false
        }
    }
    fn digits(&mut self) -> usize {
        let start = self.at;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.at += 1;
        }
        self.at - start
    }
    /// Dot-separated identifiers of `[0-9A-Za-z-]`; false if one is empty.
    fn identifiers(&mut self) -> bool {
        loop {
            let start = self.at;
            while self
                .peek()
                .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'-')
            {
                self.at += 1;
            }
            if self.at == start {
                return false;
            }
            if !self.eat(b'.') {
                return true;
            }
        }
    }
    fn done(&self) -> bool {
        self.at == self.bytes.len()
    }
}

fn check_version_inner(text: &str, wildcard: bool) -> Result<(), SyntaxError> {
    let t = text.trim();
    if t.is_empty() {
        return Err(error(text, "empty version"));
    }
    let t = t.strip_prefix('v').unwrap_or(t);
    let mut s = Scanner {
        bytes: t.as_bytes(),
        at: 0,
    };
    // Release numbers.
    loop {
        if wildcard && s.eat(b'*') {
            return if s.done() {
                Ok(())
            } else {
                Err(error(text, "`*` must be the last part of a wildcard"))
            };
        }
        if s.digits() == 0 {
            return Err(error(text, "expected a number"));
        }
        if !(s.peek() == Some(b'.')
            && s.peek_at(1)
                .is_some_and(|b| b.is_ascii_digit() || (wildcard && b == b'*')))
        {
            break;
        }
        s.eat(b'.');
    }
    if wildcard {
        return Err(error(text, "a wildcard version ends with `.*`"));
    }
    // Pre-release: semver style.
    if s.peek() == Some(b'-') && !python_pre_follows(&s, 1) {
        s.eat(b'-');
        if !s.identifiers() {
            return Err(error(text, "empty pre-release identifier after `-`"));
        }
    } else {
        // Python style, optionally after `.` or `-`.
        let skip =
            usize::from(matches!(s.peek(), Some(b'.') | Some(b'-')) && python_pre_follows(&s, 1));
        if python_pre_follows(&s, skip) {
            s.at += skip;
            let _ = s.eat_str("rc") || s.eat(b'a') || s.eat(b'b');
            if s.digits() == 0 {
                return Err(error(text, "a pre-release `a`, `b` or `rc` needs a number"));
            }
        }
        if s.eat_str(".post") && s.digits() == 0 {
            return Err(error(text, "`.post` needs a number"));
        }
        if s.eat_str(".dev") && s.digits() == 0 {
            return Err(error(text, "`.dev` needs a number"));
        }
    }
    if s.eat(b'+') && !s.identifiers() {
        return Err(error(text, "empty build metadata after `+`"));
    }
    if !s.done() {
        return Err(error(text, "unexpected text after the version"));
    }
    Ok(())
}

/// Whether a Python pre-release tag (`a`, `b`, `rc` and a digit) starts
/// `offset` bytes ahead.
fn python_pre_follows(s: &Scanner<'_>, offset: usize) -> bool {
    let rest = &s.bytes[(s.at + offset).min(s.bytes.len())..];
    let tag_len = if rest.starts_with(b"rc") {
        2
    } else if rest.starts_with(b"a") || rest.starts_with(b"b") {
        1
    } else {
        return false;
    };
    rest.get(tag_len).is_some_and(u8::is_ascii_digit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_every_version_form_the_host_documents() {
        for v in [
            "1.0.0",
            "0.6.4",
            "0.15",
            "1",
            "1.0.0-beta.2",
            "1.0.0+build.5",
            "1.0.0-rc.1+build.5",
            "0.15.0a5",
            "0.15.0b2",
            "0.15.0rc10",
            "1.1.1.dev0",
            "0.15.0a5.dev0+git.682.g0be46de2",
            "0.1.1.post1",
            "v2.1.0",
            " 1.2.3\n",
        ] {
            assert_eq!(check_version(v), Ok(()), "{v:?}");
        }
    }

    #[test]
    fn refuses_what_is_not_a_version_and_quotes_it() {
        for v in [
            "notaversion",
            "",
            "1.",
            ".1",
            "1..2",
            "1.0.0-",
            "1.0.0+",
            "1.0rc",
            "1.0.post",
            "1.0 2",
        ] {
            let err = check_version(v).expect_err(v);
            assert_eq!(err.part, v.trim(), "{v:?}");
        }
    }

    #[test]
    fn accepts_every_range_form_the_host_documents() {
        for r in [
            "",
            "*",
            "<0.6.4",
            ">=1.0.0",
            "<=1.0",
            ">0.1",
            "==1.0.0",
            "=1.0.0",
            "!=1.0.0",
            ">=0.14.0, <0.16.0",
            ">=0.14.0,<0.16.0",
            "<0.2 || >=1.0",
            "^1.2",
            "~1.2.3",
            "1.2.*",
            "1.*",
            "1.0.0",
            "<0.15.0a5",
        ] {
            assert_eq!(check_range(r), Ok(()), "{r:?}");
        }
    }

    #[test]
    fn refuses_bad_ranges_naming_the_comparator() {
        for (r, part) in [
            (">=", ">="),
            ("<<1.0", "<<1.0"),
            ("1.0,,2.0", "1.0,,2.0"),
            ("notaversion", "notaversion"),
            (">=1.0 || ", ">=1.0 ||"),
            (">=1.*", ">=1.*"),
            (">=0.1, <0.x", "<0.x"),
        ] {
            let err = check_range(r).expect_err(r);
            assert_eq!(err.part, part, "{r:?}");
        }
    }
}
