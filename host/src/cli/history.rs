//! `uplift history`: what uplift did to the database, as the database
//! itself records it.

use uplift::history::HistoryEntry;
use uplift::upgrade;

use super::Globals;
use super::failure::Outcome;
use super::output::{outln, print_json};

/// `uplift history`; with --json, one array, oldest first.
pub(super) fn history(globals: &Globals) -> Outcome {
    let home = globals.home()?;
    let entries = upgrade::history(&home)?;
    if globals.json {
        print_json(&entries);
        return Ok(());
    }
    if entries.is_empty() {
        globals.output().line(format_args!(
            "no history in {}: uplift records each upgrade, adoption and accepted edit there",
            upgrade::database_name(&home)?
        ));
    }
    for entry in &entries {
        outln!("{}", describe(entry));
    }
    Ok(())
}

/// One entry on one line: when, what, from and to, how it ended.
fn describe(entry: &HistoryEntry) -> String {
    let versions = match &entry.from_version {
        Some(from) => format!("{from} -> {}", entry.to_version),
        None => entry.to_version.clone(),
    };
    format!(
        "{}  {:<22} {:<18} {}",
        entry.ended_at, entry.event, versions, entry.outcome
    )
}
