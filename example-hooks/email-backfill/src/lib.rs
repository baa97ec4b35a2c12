//! A data backfill over many rows: learners who joined before 1.0.0 may have
//! no email address; 1.0.0 gives each of them a placeholder,
//! `lower(username)@<facility id>.example.org`, computed in Rust while
//! streaming the learners through a cursor, and written with one prepared
//! `UPDATE` run once per learner, 500 learners per call to the host
//! (`execute_many`).

use uplift_hooks_sdk::prelude::*;

uplift_hooks_sdk::plugin! {
    name: "email-backfill",
    version: "1.0.0",
    reads: ["facility"],
    writes: ["learner"],
}

/// A learner without an email address.
#[derive(FromRow)]
struct Learner {
    id: i64,
    username: String,
    facility_id: i64,
}

/// The placeholder address of a learner, as `lower(username) || '@' ||
/// facility_id || '.example.org'` would compute it in SQL.
fn placeholder_email(learner: &Learner) -> String {
    format!(
        "{}@{}.example.org",
        learner.username.to_ascii_lowercase(),
        learner.facility_id
    )
}

/// Learners updated per call to the host.
const BATCH: usize = 500;

#[version_upgrade(old_version = "<1.0.0", new_version = ">=1.0.0")]
fn backfill_emails(ctx: &Context) -> Result<()> {
    let db = ctx.db();
    let update = db.prepare("UPDATE learner SET email = ? WHERE id = ?")?;
    let learners = db
        .cursor(
            "SELECT learner.id, learner.username, learner.facility_id
               FROM learner JOIN facility ON facility.id = learner.facility_id
              WHERE learner.email IS NULL
              ORDER BY learner.id",
            params![],
        )?
        .batch_size(500)
        .rows::<Learner>();
    let mut filled = 0u64;
    // Parameter lists one after the other: email, id, email, id, ...
    let mut batch: Vec<Value> = Vec::with_capacity(2 * BATCH);
    for learner in learners {
        let learner = learner?;
        batch.extend([
            placeholder_email(&learner).to_value(),
            learner.id.to_value(),
        ]);
        if batch.len() == 2 * BATCH {
            filled += update.execute_many(&batch)?;
            batch.clear();
        }
    }
    if !batch.is_empty() {
        filled += update.execute_many(&batch)?;
    }
    if filled == 0 {
        info!("every learner already has an email address");
    } else {
        info!("gave {filled} learners a placeholder email address");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_placeholder_lowercases_the_username_and_names_the_facility() {
        let learner = Learner {
            id: 1,
            username: "Ada.Lovelace".to_string(),
            facility_id: 7,
        };
        assert_eq!(placeholder_email(&learner), "ada.lovelace@7.example.org");
    }
}
