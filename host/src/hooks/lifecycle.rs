//! Plugins' own versions: where each active plugin stands against the
//! version the data was last upgraded with ([`PluginChange`]), for every
//! active plugin of a release and a home ([`PluginChanges`]).
//!
//! The data records, in `uplift_plugins`, the version of each plugin whose
//! hooks were considered by an upgrade of it ([`RecordedPlugin`]). Against
//! the installed plugin's manifest, that gives one of four steps: a first
//! activation (nothing recorded), an upgrade (recorded older), no change, or
//! a downgrade (recorded newer), which an upgrade refuses. A disabled
//! plugin takes no step: its record, like its tables, stays, and it
//! continues from the recorded version when it is enabled again.

use std::fmt;

use serde::Serialize;

use crate::hooks::manifest::PluginStep;
use crate::version::Version;

/// A plugin's version as the data records it (`uplift_plugins`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedPlugin {
    /// The plugin's name.
    pub name: String,
    /// The version the data was last upgraded with.
    pub version: Version,
    /// When the data reached that version (UTC, RFC 3339), as recorded.
    pub updated_at: String,
}

/// How an active plugin moves in the next upgrade: from the version the
/// data recorded to the installed one. Shown as `notes 1.0.0 -> 2.0.0`, or
/// `notes (first activation) -> 1.0.0`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PluginChange {
    /// The plugin's name.
    pub plugin: String,
    /// The version the data was last upgraded with; `None`: never (the
    /// next upgrade is the plugin's first activation).
    pub from: Option<Version>,
    /// The installed plugin's version.
    pub to: Version,
}

/// The kind of a [`PluginChange`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// No version recorded: the plugin has never taken part in an upgrade
    /// of this data.
    FirstActivation,
    /// The installed plugin is newer than the recorded one.
    Upgrade,
    /// The installed plugin is the recorded version.
    Unchanged,
    /// The installed plugin is older than the recorded one.
    Downgrade,
}

impl PluginChange {
    /// Whether this is a first activation, an upgrade, no change or a
    /// downgrade.
    pub fn kind(&self) -> ChangeKind {
        match &self.from {
            None => ChangeKind::FirstActivation,
            Some(from) if *from < self.to => ChangeKind::Upgrade,
            Some(from) if *from == self.to => ChangeKind::Unchanged,
            Some(_) => ChangeKind::Downgrade,
        }
    }

    /// Whether the plugin's version moves (a first activation, an upgrade
    /// or a downgrade).
    pub fn is_change(&self) -> bool {
        self.kind() != ChangeKind::Unchanged
    }

    /// The step a hook's plugin ranges are matched against.
    pub fn step(&self) -> PluginStep<'_> {
        PluginStep {
            from: self.from.as_ref(),
            to: &self.to,
        }
    }
}

impl fmt::Display for PluginChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.from, self.kind()) {
            (None, _) => write!(f, "{} (first activation) -> {}", self.plugin, self.to),
            (Some(_), ChangeKind::Unchanged) => {
                write!(f, "{} {} (unchanged)", self.plugin, self.to)
            }
            (Some(from), ChangeKind::Downgrade) => {
                write!(f, "{} {from} -> {} (downgrade)", self.plugin, self.to)
            }
            (Some(from), _) => write!(f, "{} {from} -> {}", self.plugin, self.to),
        }
    }
}

/// Where every active plugin stands against the data, by plugin name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PluginChanges {
    all: Vec<PluginChange>,
}

impl PluginChanges {
    /// The steps of `all`, one per active plugin
    /// ([`crate::hooks::PluginSet::changes`] makes them).
    pub(crate) fn new(all: Vec<PluginChange>) -> PluginChanges {
        PluginChanges { all }
    }

    /// The step of the active plugin called `name`.
    pub fn get(&self, name: &str) -> Option<&PluginChange> {
        self.all.iter().find(|c| c.plugin == name)
    }

    /// The active plugins whose version moves, by name.
    pub fn changed(&self) -> impl Iterator<Item = &PluginChange> {
        self.all.iter().filter(|c| c.is_change())
    }

    /// Whether any active plugin's version moves.
    pub fn any_change(&self) -> bool {
        self.changed().next().is_some()
    }

    /// The first active plugin older than the version the data recorded,
    /// with that recorded version.
    pub fn downgrade(&self) -> Option<(&PluginChange, &Version)> {
        self.all.iter().find_map(|c| match &c.from {
            Some(recorded) if *recorded > c.to => Some((c, recorded)),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(from: Option<&str>, to: &str) -> PluginChange {
        PluginChange {
            plugin: "notes".into(),
            from: from.map(|v| Version::parse(v).unwrap()),
            to: Version::parse(to).unwrap(),
        }
    }

    #[test]
    fn each_kind_of_change_reads_as_an_operator_would_say_it() {
        let cases = [
            (
                None,
                "1.0.0",
                ChangeKind::FirstActivation,
                "notes (first activation) -> 1.0.0",
            ),
            (
                Some("1.0.0"),
                "2.0.0",
                ChangeKind::Upgrade,
                "notes 1.0.0 -> 2.0.0",
            ),
            (
                Some("2.0"),
                "2.0.0",
                ChangeKind::Unchanged,
                "notes 2.0.0 (unchanged)",
            ),
            (
                Some("2.0.0"),
                "1.0.0",
                ChangeKind::Downgrade,
                "notes 2.0.0 -> 1.0.0 (downgrade)",
            ),
        ];
        for (from, to, kind, text) in cases {
            let c = change(from, to);
            assert_eq!(c.kind(), kind, "{text}");
            assert_eq!(c.is_change(), kind != ChangeKind::Unchanged, "{text}");
            assert_eq!(c.to_string(), text);
        }
    }

    #[test]
    fn only_a_plugin_older_than_its_record_is_a_downgrade() {
        let changes =
            PluginChanges::new(vec![change(None, "1.0.0"), change(Some("1.0.0"), "2.0.0")]);
        assert!(changes.any_change());
        assert_eq!(changes.downgrade(), None);
        let older = PluginChanges::new(vec![change(Some("2.0.0"), "1.0.0")]);
        let (down, recorded) = older.downgrade().unwrap();
        assert_eq!(
            (down.to.to_string(), recorded.to_string()),
            ("1.0.0".into(), "2.0.0".into())
        );
        assert!(!PluginChanges::new(vec![change(Some("2.0.0"), "2.0.0")]).any_change());
    }
}
