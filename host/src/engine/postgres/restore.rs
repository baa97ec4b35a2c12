//! Restoring a backup over a PostgreSQL database (`uplift dbrestore`):
//! verify the file; refuse while other sessions use the database, naming
//! them; back the current database up (`pre-restore`); build the restored
//! database beside it (`CREATE DATABASE … TEMPLATE template0` with the
//! current one's encoding, collation and owner, then `psql -X -1 -v
//! ON_ERROR_STOP=1`, the whole dump in one transaction); check it with
//! `pg_amcheck --heapallindexed` where it is installed and the role may
//! create the `amcheck` extension; and only then swap the two, renaming
//! both databases in one transaction from a third database (`postgres`,
//! else `template1`), so that the name always holds one whole database.
//! The replaced database is then dropped: the safety backup holds it. Any
//! failure before the swap drops the database being built and leaves the
//! current one as it was.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use postgres::Client;
use postgres::error::SqlState;

use super::backup::{Lines, find_tool, write_backup};
use super::connect::PgTarget;
use super::error::PgError;
use super::meta;
use crate::backup::error::RestoreError;
use crate::backup::files;
use crate::backup::{
    BackupKind, BackupOptions, Progress, ProgressUnit, RestoreOptions, RestoreReport,
};
use crate::home::{DatabaseSettings, Home};

/// Restores `file` over the PostgreSQL database `settings` names; see the
/// module's documentation. The caller holds the home's lock.
pub(crate) fn restore(
    home: &Home,
    settings: &DatabaseSettings,
    file: &Path,
    options: &RestoreOptions,
    progress: &mut dyn Progress,
) -> Result<RestoreReport, RestoreError> {
    let target = PgTarget::from_settings(settings, &home.settings_path())?;
    let verified = files::verify_with_progress(file, progress).map_err(RestoreError::Verify)?;
    let header = match verified.header {
        Some(header) if header.is_postgres() => header,
        Some(_) => {
            return Err(RestoreError::OtherEngine {
                path: file.to_path_buf(),
                dump: "SQLite".into(),
                home: "PostgreSQL",
            });
        }
        None => {
            return Err(RestoreError::NotOnPostgres {
                path: file.to_path_buf(),
            });
        }
    };
    let mut client = target.connect()?;
    refuse_other_sessions(&mut client, &target)?;
    let row = client
        .query_one(
            "SELECT pg_encoding_to_char(encoding), datcollate, datctype, pg_get_userbyid(datdba)
             FROM pg_database WHERE datname = current_database()",
            &[],
        )
        .map_err(PgError::sql("read the database's encoding and owner"))?;
    let (encoding, collate, ctype, owner): (String, String, String, String) =
        (row.get(0), row.get(1), row.get(2), row.get(3));

    let safety_backup = if options.safety_backup {
        let mut backup = BackupOptions::new(BackupKind::PreRestore);
        backup.compress = options.compress_safety_backup;
        let made = write_backup(
            &mut client,
            &target,
            None,
            &home.backups_dir(),
            &backup,
            progress,
        )
        .map_err(|cause| RestoreError::SafetyBackup {
            database: target.display().into(),
            cause,
        })?;
        Some(made)
    } else {
        None
    };

    let current = target.dbname().to_string();
    let building = side_name(&current, "restoring");
    let replaced = side_name(&current, "replaced");
    // A killed restore's leftovers go first.
    for leftover in [&building, &replaced] {
        client
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {}",
                quote_ident(leftover)
            ))
            .map_err(PgError::sql(format!(
                "drop the leftover database {leftover}"
            )))?;
    }
    client
        .batch_execute(&format!(
            "CREATE DATABASE {} TEMPLATE template0 ENCODING {} LC_COLLATE {} LC_CTYPE {} OWNER {}",
            quote_ident(&building),
            quote_literal(&encoding),
            quote_literal(&collate),
            quote_literal(&ctype),
            quote_ident(&owner)
        ))
        .map_err(PgError::sql(format!(
            "create the database {building} to restore into (the role needs CREATEDB)"
        )))?;
    let built = target.with_dbname(&building);
    let result = build(&built, file, progress).and_then(|rows| {
        let mut warnings = Vec::new();
        check(&built, file, &mut warnings)?;
        Ok((rows, warnings))
    });
    let (rows, mut warnings) = match result {
        Ok(done) => done,
        Err(e) => {
            let _ = client.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {}",
                quote_ident(&building)
            ));
            return Err(e);
        }
    };
    let data_version = {
        let mut restored = built.connect()?;
        meta::get(&mut restored, "data_version")?
    };
    if data_version != header.data_version {
        warnings.push(format!(
            "the restored database records data version {}, but the backup's header says {}",
            data_version.as_deref().unwrap_or("none"),
            header.data_version.as_deref().unwrap_or("none")
        ));
    }
    drop(client);
    if let Err(e) = swap(&target, &current, &building, &replaced) {
        if let Ok(mut client) = target.connect() {
            let _ = client.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {}",
                quote_ident(&building)
            ));
        }
        return Err(e);
    }
    // The replaced database is in the safety backup (when one was made).
    match target.connect() {
        Ok(mut client) => {
            if let Err(e) = client.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {}",
                quote_ident(&replaced)
            )) {
                warnings.push(format!(
                    "the replaced database was kept as {replaced}: it could not be dropped ({e}); drop it once you no longer need it"
                ));
            }
        }
        Err(e) => warnings.push(format!(
            "the replaced database was kept as {replaced} ({e}); drop it once you no longer need it"
        )),
    }
    Ok(RestoreReport {
        source: file.to_path_buf(),
        database: target.display().into(),
        header: Some(header),
        verified: true,
        safety_backup,
        data_version,
        statements: 0,
        rows,
        warnings,
    })
}

/// Refuses while any session but this one is connected to the database,
/// naming each.
fn refuse_other_sessions(client: &mut Client, target: &PgTarget) -> Result<(), RestoreError> {
    let rows = client
        .query(
            "SELECT pid, usename::text, coalesce(application_name, ''),
                    coalesce(host(client_addr), 'local'), coalesce(state, '')
             FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()
             ORDER BY pid",
            &[],
        )
        .map_err(PgError::sql("list the database's sessions"))?;
    if rows.is_empty() {
        return Ok(());
    }
    let sessions: Vec<String> = rows
        .iter()
        .map(|r| {
            let name: String = r.get(2);
            format!(
                "server process {} (role {}, {}, from {}, {})",
                r.get::<_, i32>(0),
                r.get::<_, String>(1),
                if name.is_empty() {
                    "no application name".to_string()
                } else {
                    name
                },
                r.get::<_, String>(3),
                r.get::<_, String>(4)
            )
        })
        .collect();
    Err(RestoreError::InUse {
        database: target.display().into(),
        evidence: format!("connected: {}", sessions.join("; ")),
    })
}

/// Runs the dump through `psql` into `built`, in one transaction, stopping
/// at the first error; returns the rows it loaded.
fn build(built: &PgTarget, file: &Path, progress: &mut dyn Progress) -> Result<u64, RestoreError> {
    let psql = find_tool("psql", None)?;
    let mut reader = files::open_dump(file).map_err(|e| RestoreError::Verify(e.into()))?;
    progress.begin("restoring", Some(reader.file_size), ProgressUnit::Bytes);
    let mut command = Command::new(&psql);
    command
        .args(["-X", "-q", "-1", "-v", "ON_ERROR_STOP=1", "--no-password"])
        .arg(format!("--dbname={}", built.conninfo()))
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(password) = built.password() {
        command.env("PGPASSWORD", password);
    }
    let failed = |message: String| RestoreError::Psql {
        path: file.to_path_buf(),
        message,
    };
    let mut child = command
        .spawn()
        .map_err(|e| failed(format!("could not start {}: {e}", psql.display())))?;
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let mut lines = Lines::default();
    let mut chunk = vec![0u8; 1 << 20];
    let mut fed = Ok(());
    loop {
        let n = match reader.text.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                fed = Err(failed(format!("could not read the dump: {e}")));
                break;
            }
        };
        lines.scan(&chunk[..n]);
        // psql stops reading at its first error: what it said tells why.
        if stdin.write_all(&chunk[..n]).is_err() {
            break;
        }
        progress.update(
            reader.consumed.load(std::sync::atomic::Ordering::Relaxed),
            lines.rows,
        );
    }
    drop(stdin);
    progress.end();
    let status = child
        .wait()
        .map_err(|e| failed(format!("could not wait for psql: {e}")))?;
    let errors = errors.join().unwrap_or_default();
    if !status.success() {
        return Err(failed(format!("psql {status}: {}", errors.trim())));
    }
    fed?;
    Ok(lines.rows)
}

/// `pg_amcheck --heapallindexed` on the restored database, when it is
/// installed and the `amcheck` extension can be created there (it is
/// dropped again); otherwise a warning says the check was skipped.
fn check(built: &PgTarget, file: &Path, warnings: &mut Vec<String>) -> Result<(), RestoreError> {
    let Ok(pg_amcheck) = find_tool("pg_amcheck", None) else {
        warnings.push("pg_amcheck is not installed: the restored database was not checked".into());
        return Ok(());
    };
    let mut client = built.connect()?;
    let had: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'amcheck')",
            &[],
        )
        .map_err(PgError::sql("look for the amcheck extension"))?
        .get(0);
    if !had && let Err(e) = client.batch_execute("CREATE EXTENSION amcheck") {
        warnings.push(format!(
            "the restored database was not checked: the amcheck extension could not be created ({e})"
        ));
        return Ok(());
    }
    let mut command = Command::new(&pg_amcheck);
    command
        .args(["--heapallindexed", "--no-password"])
        .args(built.tool_options())
        .arg(format!("--maintenance-db={}", built.dbname()))
        .arg(built.dbname())
        .stdin(Stdio::null());
    if let Some(password) = built.password() {
        command.env("PGPASSWORD", password);
    }
    let out = command.output();
    if !had {
        let _ = client.batch_execute("DROP EXTENSION amcheck");
    }
    let out = out.map_err(|e| RestoreError::Psql {
        path: file.to_path_buf(),
        message: format!("could not run {}: {e}", pg_amcheck.display()),
    })?;
    if !out.status.success() {
        let mut details = String::from_utf8_lossy(&out.stdout).into_owned();
        details.push_str(&String::from_utf8_lossy(&out.stderr));
        return Err(RestoreError::Check {
            path: file.to_path_buf(),
            check: "pg_amcheck --heapallindexed",
            details: details.trim().chars().take(2000).collect(),
        });
    }
    Ok(())
}

/// Renames `current` to `replaced` and `building` to `current`, in one
/// transaction on a third database.
fn swap(
    target: &PgTarget,
    current: &str,
    building: &str,
    replaced: &str,
) -> Result<(), RestoreError> {
    let mut client = match target.with_dbname("postgres").connect() {
        Ok(client) => client,
        Err(_) => target.with_dbname("template1").connect()?,
    };
    let renames = format!(
        "BEGIN; ALTER DATABASE {cur} RENAME TO {old}; ALTER DATABASE {new} RENAME TO {cur}; COMMIT;",
        cur = quote_ident(current),
        old = quote_ident(replaced),
        new = quote_ident(building),
    );
    if let Err(e) = client.batch_execute(&renames) {
        let _ = client.batch_execute("ROLLBACK");
        if e.code() == Some(&SqlState::OBJECT_IN_USE) {
            let mut again = target.connect()?;
            refuse_other_sessions(&mut again, target)?;
        }
        return Err(PgError::sql(format!("rename {building} to {current}"))(e).into());
    }
    Ok(())
}

/// `name_uplift_WHAT`, within PostgreSQL's 63 bytes.
fn side_name(name: &str, what: &str) -> String {
    let suffix = format!("_uplift_{what}");
    let mut keep = 63usize.saturating_sub(suffix.len()).min(name.len());
    while !name.is_char_boundary(keep) {
        keep -= 1;
    }
    format!("{}{suffix}", &name[..keep])
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}
