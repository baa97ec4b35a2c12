//! An independent reading of the range grammar of `uplift_contract::version`
//! (its module documentation is the specification), used as the oracle of
//! the `range_match` target: a range matches a version exactly when one of
//! its alternatives does, and an alternative matches exactly when every one
//! of its comparators holds, each comparator read on its own with the
//! meaning the documentation's table gives it.
//!
//! It shares no code with the parser but `Version` itself (its parsing and
//! its order, which the `version_order` target checks), so that a
//! comparator that the parser turns into the wrong bounds is caught.

use uplift_contract::Version;

/// The operators, longest spelling first (so that `<=` is not read as `<`).
const OPERATORS: [&str; 10] = ["~=", "<=", ">=", "==", "!=", "<", ">", "=", "^", "~"];

/// One comparator as written: its operator (if any) and its operand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comparator<'a> {
    /// `<`, `>=`, `^`... or `None` for a bare version (equality).
    pub op: Option<&'static str>,
    /// The version, the wildcard (`1.2.*`) or `*`.
    pub operand: &'a str,
}

/// The comparators of `range`, grouped by alternative (`||`); `None` when
/// the text is not a range by the grammar's shape (an empty alternative or
/// comparator, an operator without an operand). Operands are not checked
/// here: [`holds`] parses them.
pub fn alternatives(range: &str) -> Option<Vec<Vec<Comparator<'_>>>> {
    let range = range.trim();
    if range.is_empty() {
        return Some(vec![Vec::new()]);
    }
    range
        .split("||")
        .map(|alternative| {
            let alternative = alternative.trim();
            if alternative.is_empty() {
                return None;
            }
            let mut all = Vec::new();
            for group in alternative.split(',') {
                let mut words = group.split_whitespace().peekable();
                // An empty comparator (`1.0,,2.0`) is not a range.
                words.peek()?;
                while let Some(word) = words.next() {
                    let op = OPERATORS.iter().copied().find(|op| word.starts_with(op));
                    let operand = match op {
                        // `>= 1.0`: the operand is the next word.
                        Some(op) if word.len() == op.len() => words.next()?,
                        Some(op) => &word[op.len()..],
                        None => word,
                    };
                    all.push(Comparator { op, operand });
                }
            }
            Some(all)
        })
        .collect()
}

/// The release numbers of `v` padded with zeros (or cut) to `len`.
fn padded(v: &Version, len: usize) -> Vec<u64> {
    (0..len)
        .map(|i| v.release().get(i).copied().unwrap_or(0))
        .collect()
}

/// Whether `x` is in the release series of the first `len` numbers of
/// `series`: the same epoch, the same first numbers (missing ones are 0).
fn in_series(x: &Version, series: &Version, len: usize) -> bool {
    x.epoch() == series.epoch() && padded(x, len) == padded(series, len)
}

/// Whether comparator `c` holds for `x`, by the documentation's table;
/// `None` when its operand is not a version or wildcard it may take.
pub fn holds(c: &Comparator<'_>, x: &Version) -> Option<bool> {
    if c.operand == "*" {
        return c.op.is_none().then_some(true);
    }
    if let Some(prefix) = c.operand.strip_suffix(".*") {
        let series = Version::parse(prefix).ok()?;
        // Release numbers only: no pre-, post- or dev-release, no build.
        let plain = !series.is_prerelease()
            && series.build().is_none()
            && !series.normalized().contains(".post");
        if !plain || prefix.contains('*') {
            return None;
        }
        let inside = in_series(x, &series, series.release().len());
        return match c.op {
            None | Some("=" | "==") => Some(inside),
            Some("!=") => Some(!inside),
            Some(_) => None,
        };
    }
    let v = Version::parse(c.operand).ok()?;
    let written = v.release();
    Some(match c.op {
        None | Some("=" | "==") => *x == v,
        Some("!=") => *x != v,
        Some("<") => *x < v,
        Some("<=") => *x <= v,
        Some(">") => *x > v,
        Some(">=") => *x >= v,
        // The same numbers up to the first non-zero one written (or all).
        Some("^") => {
            let len = written
                .iter()
                .position(|&n| n != 0)
                .map_or(written.len(), |i| i + 1);
            *x >= v && in_series(x, &v, len)
        }
        // The same major and minor if written, else the same major.
        Some("~") => *x >= v && in_series(x, &v, written.len().min(2)),
        // All but the last number written (at least two are).
        Some("~=") => {
            if written.len() < 2 {
                return None;
            }
            *x >= v && in_series(x, &v, written.len() - 1)
        }
        Some(_) => return None,
    })
}

/// Whether `range` matches `x` by the model: some alternative whose every
/// comparator holds. `None` when the model cannot read the range.
pub fn matches(range: &str, x: &Version) -> Option<bool> {
    let mut any = false;
    for all in alternatives(range)? {
        let mut every = true;
        for c in &all {
            every &= holds(c, x)?;
        }
        any |= every;
    }
    Some(any)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn comparators_are_read_with_and_without_space_after_the_operator() {
        let got = alternatives(">= 1.0 <2,^3 || 4.*").unwrap();
        let ops: Vec<Vec<_>> = got
            .iter()
            .map(|all| all.iter().map(|c| (c.op, c.operand)).collect())
            .collect();
        assert_eq!(
            ops,
            [
                vec![(Some(">="), "1.0"), (Some("<"), "2"), (Some("^"), "3")],
                vec![(None, "4.*")]
            ]
        );
        assert_eq!(alternatives("1.0 ||"), None);
        assert_eq!(alternatives(">="), None);
    }

    #[test]
    fn the_model_follows_the_documented_table() {
        assert_eq!(matches("^1.2", &v("1.9.9")), Some(true));
        assert_eq!(matches("^1.2", &v("2.0.0a1")), Some(false));
        assert_eq!(matches("^0.0", &v("0.0.7")), Some(true));
        assert_eq!(matches("~=1.4", &v("1.9")), Some(true));
        assert_eq!(matches("~=1", &v("1.9")), None);
        assert_eq!(matches("1.2.*", &v("1.2.0rc1")), Some(true));
        assert_eq!(matches("!=1.2.*", &v("1.3.0.dev0")), Some(true));
        assert_eq!(matches("<0.6.4 || >=1.0", &v("0.7")), Some(false));
        assert_eq!(matches("", &v("7")), Some(true));
    }
}
