//! Versions and version ranges. (Interim: dotted numbers and simple
//! comparators only; the full grammar is being written.)

use std::cmp::Ordering;
use std::fmt;

/// An invalid version or range, quoting the offending part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid version {0:?}")]
pub struct VersionError(pub String);

/// A release version.
#[derive(Debug, Clone)]
pub struct Version {
    text: String,
    parts: Vec<u64>,
}

impl Version {
    /// Parses a version.
    pub fn parse(s: &str) -> Result<Version, VersionError> {
        let text = s.trim().trim_start_matches('v').to_string();
        let parts = text
            .split('.')
            .map(|p| p.parse::<u64>().map_err(|_| VersionError(s.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Version { text, parts })
    }
    fn key(&self) -> Vec<u64> {
        let mut k = self.parts.clone();
        while k.last() == Some(&0) {
            k.pop();
        }
        k
    }
}
impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}
impl PartialEq for Version {
    fn eq(&self, o: &Self) -> bool {
        self.key() == o.key()
    }
}
impl Eq for Version {}
impl PartialOrd for Version {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Version {
    fn cmp(&self, o: &Self) -> Ordering {
        self.key().cmp(&o.key())
    }
}

/// A version range.
#[derive(Debug, Clone)]
pub struct VersionRange {
    text: String,
    comparators: Vec<(String, Version)>,
}
impl VersionRange {
    /// Parses a range.
    pub fn parse(s: &str) -> Result<VersionRange, VersionError> {
        let mut comparators = Vec::new();
        for part in s
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty() && *p != "*")
        {
            let op: String = part.chars().take_while(|c| "<>=!".contains(*c)).collect();
            comparators.push((op.clone(), Version::parse(&part[op.len()..])?));
        }
        Ok(VersionRange {
            text: s.trim().to_string(),
            comparators,
        })
    }
    /// Whether `v` is in the range.
    pub fn matches(&self, v: &Version) -> bool {
        self.comparators.iter().all(|(op, b)| match op.as_str() {
            "<" => v < b,
            "<=" => v <= b,
            ">" => v > b,
            ">=" => v >= b,
            "!=" => v != b,
            _ => v == b,
        })
    }
}
impl fmt::Display for VersionRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}
