//! What uplift did to a database, kept inside it: one entry per event
//! (an upgrade or install, committed or failed and rolled back; an
//! adoption; an edited migration a release accepted), so that the record travels with the data, into
//! every backup. `uplift status` reads the newest adoption from it.

use serde::{Deserialize, Serialize};

use crate::migrations::AcceptedEdit;
use crate::version::Version;

/// One event in a database's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// What happened: `adopt`.
    pub event: String,
    /// When it began (UTC, RFC 3339).
    pub started_at: String,
    /// When it ended (UTC, RFC 3339).
    pub ended_at: String,
    /// The data version before; `None` for a database uplift did not know.
    pub from_version: Option<String>,
    /// The data version after.
    pub to_version: String,
    /// How it ended: `adopted`, `adopted despite differences`.
    pub outcome: String,
    /// The uplift that did it.
    pub uplift_version: String,
    /// What an operator may want to know afterwards (for an adoption: the
    /// migrations recorded, the tables ignored, the differences overridden).
    pub details: serde_json::Value,
}

/// An adoption, as the history records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdoptionDetails {
    /// The numbers of the migrations recorded as applied.
    pub migrations: Vec<u32>,
    /// The tables left alone because the release ignores them.
    pub ignored: Vec<String>,
    /// Tables left to the plugins that own their prefix.
    pub plugin_tables: Vec<String>,
    /// The differences `--force` overrode, in words; empty when the schema
    /// matched.
    pub differences: Vec<String>,
    /// The backup made before.
    pub backup: Option<String>,
}

/// What an upgrade (or install) did, or how far it got, as the history
/// records it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UpgradeDetails {
    /// The backup made before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<String>,
    /// The migrations applied, with their times.
    #[serde(default)]
    pub migrations: Vec<StepTime>,
    /// The hooks run (`plugin/hook`), with their times.
    #[serde(default)]
    pub hooks: Vec<StepTime>,
    /// Why it failed, for an attempt that did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorRecord>,
}

/// One step and the time it took.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepTime {
    /// The migration's file name, or `plugin/hook`.
    pub name: String,
    /// Milliseconds.
    pub ms: f64,
}

/// A failure, as the history records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorRecord {
    /// The stable code of its kind (see `docs/errors.md`).
    pub code: String,
    /// The message, with its causes.
    pub message: String,
}

/// `event` of an upgrade.
pub const UPGRADE: &str = "upgrade";

/// `event` of an install (a new or empty database brought to a release).
pub const INSTALL: &str = "install";

/// `outcome` of an upgrade that committed.
pub const UPGRADED: &str = "upgraded";

/// `outcome` of an install that committed.
pub const INSTALLED: &str = "installed";

/// `outcome` of an upgrade that failed and was rolled back.
pub const FAILED: &str = "failed";

/// `event` of an edit to an applied migration that a release accepted.
pub const ACCEPT_MIGRATION_EDIT: &str = "accept-migration-edit";

/// `event` of an adoption.
pub const ADOPT: &str = "adopt";

/// `outcome` of an adoption that found the release's schema.
pub const ADOPTED: &str = "adopted";

/// `outcome` of an adoption forced over differences.
pub const ADOPTED_DESPITE_DIFFERENCES: &str = "adopted despite differences";

impl HistoryEntry {
    /// The entry recording an adoption at `version`.
    pub fn adoption(
        started: jiff::Timestamp,
        version: &Version,
        details: &AdoptionDetails,
    ) -> Self {
        HistoryEntry {
            event: ADOPT.into(),
            started_at: stamp(started),
            ended_at: stamp(jiff::Timestamp::now()),
            from_version: None,
            to_version: version.to_string(),
            outcome: if details.differences.is_empty() {
                ADOPTED
            } else {
                ADOPTED_DESPITE_DIFFERENCES
            }
            .into(),
            uplift_version: env!("CARGO_PKG_VERSION").into(),
            details: serde_json::to_value(details).unwrap_or_default(),
        }
    }

    /// The entry recording an upgrade (`from` is `Some`) or an install
    /// from `from` to `to`, begun at `started`: `outcome` is `upgraded`,
    /// `installed` or `failed`.
    pub fn upgrade(
        started: jiff::Timestamp,
        from: Option<&Version>,
        to: &Version,
        outcome: &str,
        details: &UpgradeDetails,
    ) -> Self {
        HistoryEntry {
            event: if from.is_some() { UPGRADE } else { INSTALL }.into(),
            started_at: stamp(started),
            ended_at: stamp(jiff::Timestamp::now()),
            from_version: from.map(ToString::to_string),
            to_version: to.to_string(),
            outcome: outcome.into(),
            uplift_version: env!("CARGO_PKG_VERSION").into(),
            details: serde_json::to_value(details).unwrap_or_default(),
        }
    }

    /// The entry recording that release `release` accepted `edit`.
    pub fn accepted_edit(edit: &AcceptedEdit, release: &Version) -> Self {
        let now = stamp(jiff::Timestamp::now());
        HistoryEntry {
            event: ACCEPT_MIGRATION_EDIT.into(),
            started_at: now.clone(),
            ended_at: now,
            from_version: None,
            to_version: release.to_string(),
            outcome: "accepted".into(),
            uplift_version: env!("CARGO_PKG_VERSION").into(),
            details: serde_json::to_value(edit).unwrap_or_default(),
        }
    }

    /// The adoption's details, when this entry is an adoption.
    pub fn adoption_details(&self) -> Option<AdoptionDetails> {
        (self.event == ADOPT)
            .then(|| serde_json::from_value(self.details.clone()).ok())
            .flatten()
    }
}

/// A time as the history writes it: UTC, to the second.
fn stamp(at: jiff::Timestamp) -> String {
    at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}
