//! `uplift report`: one object a fleet collects from every site.

use uplift::upgrade;

use super::Globals;
use super::failure::Outcome;
use super::output::{outln, print_json};

/// `uplift report`; with --json, one object (docs/report.md names its
/// fields).
pub(super) fn report(globals: &Globals) -> Outcome {
    let home = globals.home()?;
    let release = globals.release()?;
    let report = upgrade::report(&home, &release)?;
    if globals.json {
        let mut value = serde_json::to_value(&report)?;
        value["uplift"]["wasmtime"] = wasmtime_environ::VERSION.into();
        print_json(&value);
        return Ok(());
    }
    let db = &report.database;
    outln!(
        "{} {} at {}: {}",
        report.application.name,
        report.application.release,
        report.home.display(),
        db.state
    );
    outln!(
        "data version {}; database {} bytes",
        db.data_version
            .as_ref()
            .map_or("none".to_string(), ToString::to_string),
        db.size
    );
    match &report.last_upgrade {
        Some(last) => outln!(
            "last upgrade {} -> {} at {}: {}",
            last.from_version.as_deref().unwrap_or("nothing"),
            last.to_version,
            last.ended_at,
            last.outcome
        ),
        None => outln!("last upgrade none recorded"),
    }
    let unverified = report.backups.iter().filter(|b| !b.verified).count();
    outln!(
        "backups {} ({} bytes), {unverified} that do not verify",
        report.backups.len(),
        report.backups.iter().map(|b| b.size).sum::<u64>()
    );
    if let Some(disk) = report.disk {
        outln!("disk {} bytes free of {}", disk.free, disk.total);
    }
    for drift in &db.drift {
        outln!("drift {drift}");
    }
    Ok(())
}
