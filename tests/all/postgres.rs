//! The PostgreSQL engine against a real server: every test here needs
//! PostgreSQL (its name says so: this module). One throwaway cluster serves
//! the whole test binary: started on first use (`initdb`, then `pg_ctl
//! start` on a unix socket in a temporary folder, about 2 s), one database
//! per test, and stopped when the test process ends, however it ends: a
//! watchdog process, in a process group of its own, waits for the test
//! binary to exit (Rust runs no destructors of statics), then stops the
//! cluster (`pg_ctl stop -m immediate`) and removes the folder. When
//! PostgreSQL is not installed, the tests fail saying to run
//! `scripts/setup`, which installs it.

use std::io::Write as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::support::{TestRelease, example_release, stderr, stdout, uplift};

/// The shared cluster.
struct Cluster {
    /// The temporary folder: `data/`, the socket, the server's log.
    dir: PathBuf,
    /// Where `initdb`, `pg_ctl`, `psql` and `pg_dump` are.
    bin: PathBuf,
}

static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
static NEXT_DB: AtomicUsize = AtomicUsize::new(1);

/// The role the tests (and uplift) connect as.
const ROLE: &str = "uplift";

fn cluster() -> &'static Cluster {
    match CLUSTER.get_or_init(start_cluster) {
        Ok(cluster) => cluster,
        Err(why) => panic!("{why}"),
    }
}

/// The folder of PostgreSQL's server programs.
fn server_bin() -> Result<PathBuf, String> {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").is_file() {
            return Ok(dir);
        }
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin): &(u32, PathBuf)| bin.join("initdb").is_file())
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin).ok_or_else(|| {
        "PostgreSQL is not installed (no initdb under /usr/lib/postgresql/*/bin, and no pg_config): \
         run scripts/setup, which installs Debian's postgresql package; these tests need a real server"
            .to_string()
    })
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Runs a server program: as the `postgres` user when the tests run as
/// root (the server refuses to run as root).
fn server_command(bin: &Path, program: &str) -> Command {
    if is_root() {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(bin.join(program));
        cmd
    } else {
        Command::new(bin.join(program))
    }
}

fn start_cluster() -> Result<Cluster, String> {
    let bin = server_bin()?;
    let dir = tempfile::Builder::new()
        .prefix("uplift-pg-")
        .tempdir_in("/tmp")
        .map_err(|e| format!("could not create the cluster's folder: {e}"))?
        .keep();
    let fail = |what: &str, out: std::io::Result<Output>| -> Result<(), String> {
        match out {
            Ok(out) if out.status.success() => Ok(()),
            Ok(out) => Err(format!(
                "{what} failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )),
            Err(e) => Err(format!("{what} could not run: {e}")),
        }
    };
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .map_err(|e| e.to_string())?;
    if is_root() {
        fail(
            "chown of the cluster's folder",
            Command::new("chown").arg("postgres:").arg(&dir).output(),
        )?;
    }
    // The watchdog first: whatever happens next, the folder goes.
    start_watchdog(&bin, &dir)?;
    let data = dir.join("data");
    fail(
        "initdb",
        server_command(&bin, "initdb")
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                ROLE,
                "-A",
                "trust",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ])
            .output(),
    )?;
    let options = format!(
        "-k {} -c listen_addresses= -c fsync=off -c full_page_writes=off -c max_connections=60",
        dir.display()
    );
    fail(
        "pg_ctl start",
        server_command(&bin, "pg_ctl")
            .arg("start")
            .arg("-w")
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(dir.join("server.log"))
            .arg("-o")
            .arg(&options)
            .stdin(Stdio::null())
            .output(),
    )?;
    Ok(Cluster { dir, bin })
}

/// A process that outlives the test binary: it waits for it to exit, then
/// stops the cluster and removes its folder.
fn start_watchdog(bin: &Path, dir: &Path) -> Result<(), String> {
    let runner = if is_root() {
        "runuser -u postgres -- "
    } else {
        ""
    };
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; \
         {runner}'{pg_ctl}' stop -D '{data}' -m immediate >/dev/null 2>&1; rm -rf '{dir}'",
        pid = std::process::id(),
        pg_ctl = bin.join("pg_ctl").display(),
        data = dir.join("data").display(),
        dir = dir.display(),
    );
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own process group: a Ctrl-C meant for the tests leaves it be.
        .process_group(0)
        .spawn()
        .map(drop)
        .map_err(|e| format!("could not start the cluster's watchdog: {e}"))
}

/// One test's database on the shared cluster.
struct Db {
    name: String,
}

impl Db {
    /// A new, empty database.
    fn new() -> Db {
        let cluster = cluster();
        let name = format!("t{}", NEXT_DB.fetch_add(1, Ordering::SeqCst));
        admin()
            .batch_execute(&format!("CREATE DATABASE {name} TEMPLATE template0"))
            .expect("create the test's database");
        let _ = cluster;
        Db { name }
    }

    fn client(&self) -> postgres::Client {
        connect(&self.name)
    }

    /// A home whose `uplift.toml` names this database.
    fn home(&self, root: &Path) -> PathBuf {
        let home = root.join(format!("home-{}", self.name));
        std::fs::create_dir_all(&home).unwrap();
        std::fs::write(
            home.join("uplift.toml"),
            format!(
                "[database]\nhost = \"{}\"\ndbname = \"{}\"\nuser = \"{ROLE}\"\n",
                cluster().dir.display(),
                self.name
            ),
        )
        .unwrap();
        home
    }

    fn query_i64(&self, sql: &str) -> i64 {
        self.client().query_one(sql, &[]).unwrap().get(0)
    }

    fn data_version(&self) -> Option<String> {
        self.client()
            .query_opt(
                "SELECT value FROM uplift.meta WHERE key = 'data_version'",
                &[],
            )
            .unwrap()
            .map(|r| r.get(0))
    }

    fn table_exists(&self, name: &str) -> bool {
        self.client()
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&name])
            .unwrap()
            .get(0)
    }
}

fn connect(dbname: &str) -> postgres::Client {
    let mut config = postgres::Config::new();
    config
        .host_path(&cluster().dir)
        .user(ROLE)
        .dbname(dbname)
        .application_name("test");
    config
        .connect(postgres::NoTls)
        .expect("connect to the test cluster")
}

fn admin() -> postgres::Client {
    connect("postgres")
}

/// A PostgreSQL client program of the cluster's (`psql`).
fn client_tool(program: &str) -> Command {
    Command::new(cluster().bin.join(program))
}

fn run_in(home: &Path, release: &Path, args: &[&str]) -> Output {
    uplift()
        .args(args)
        .arg("--home")
        .arg(home)
        .arg("--release")
        .arg(release)
        .env_remove("PGPASSWORD")
        .output()
        .expect("uplift runs")
}

fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "uplift failed: {}\n{}",
        stdout(out),
        stderr(out)
    );
}

fn backups(home: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(home.join("backups"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    found.retain(|p| p.extension().is_some_and(|e| e == "dump"));
    found.sort();
    found
}

/// The text of a dump after uplift's header lines.
fn dump_body(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let body_start = text
        .find("\n--\n")
        .expect("pg_dump's text follows the header");
    let end = text.rfind("-- uplift-sha256: ").unwrap();
    text[body_start..end].to_string()
}

const V1: &[(&str, &str)] = &[(
    "0001_initial.sql",
    "CREATE TABLE facility (id INTEGER PRIMARY KEY, name TEXT NOT NULL);\n\
     CREATE TABLE learner (id INTEGER PRIMARY KEY, facility_id INTEGER NOT NULL REFERENCES facility(id), username TEXT NOT NULL);\n",
)];

/// Release 2 of the test application: a shared migration that SQLite
/// runs, replaced on PostgreSQL by its own file (SQLite's `AUTOINCREMENT`
/// is not PostgreSQL's).
fn two_releases(root: &Path) -> (TestRelease, TestRelease) {
    let v1 = TestRelease::new(root, "r1", "app", "1.0.0", V1);
    let mut v2_migrations = V1.to_vec();
    v2_migrations.push((
        "0002_lesson.sql",
        "CREATE TABLE lesson (id INTEGER PRIMARY KEY AUTOINCREMENT, title TEXT NOT NULL);\n\
         ALTER TABLE learner ADD COLUMN email TEXT;\n",
    ));
    let v2 = TestRelease::new(root, "r2", "app", "2.0.0", &v2_migrations);
    let pg = v2.dir.join("migrations/postgres");
    std::fs::create_dir_all(&pg).unwrap();
    std::fs::write(
        pg.join("0002_lesson.sql"),
        "CREATE TABLE lesson (id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY, title text NOT NULL);\n\
         ALTER TABLE learner ADD COLUMN email text;\n\
         CREATE INDEX learner_email ON learner (email);\n",
    )
    .unwrap();
    (v1, v2)
}

fn installed_with_rows(db: &Db, home: &Path, v1: &TestRelease) {
    assert_ok(&run_in(home, &v1.dir, &["upgrade"]));
    db.client()
        .batch_execute(
            "INSERT INTO facility VALUES (1, 'north'), (2, 'south');
             INSERT INTO learner VALUES (1, 1, 'ada'), (2, 2, 'bob'), (3, 1, 'it''s me');",
        )
        .unwrap();
}

#[test]
fn postgres_install_then_upgrade_with_the_engines_own_migration() {
    let root = tempfile::tempdir().unwrap();
    let db = Db::new();
    let home = db.home(root.path());
    let (v1, v2) = two_releases(root.path());

    let status = run_in(&home, &v1.dir, &["status", "-q"]);
    assert_ok(&status);
    assert_eq!(stdout(&status).trim(), "not installed");
    let empty = run_in(&home, &v1.dir, &["history"]);
    assert_ok(&empty);
    assert!(
        stdout(&empty).contains(&format!("no history in postgresql://uplift@/{}", db.name)),
        "{}",
        stdout(&empty)
    );

    installed_with_rows(&db, &home, &v1);
    assert_eq!(db.data_version().as_deref(), Some("1.0.0"));
    assert!(
        backups(&home).is_empty(),
        "an install has nothing to back up"
    );
    let status = run_in(&home, &v1.dir, &["status", "-q"]);
    assert_eq!(stdout(&status).trim(), "up to date");
    let status = run_in(&home, &v2.dir, &["status"]);
    assert_ok(&status);
    assert!(
        stdout(&status).contains("pending        0002_lesson.sql"),
        "{}",
        stdout(&status)
    );

    let out = run_in(&home, &v2.dir, &["upgrade"]);
    assert_ok(&out);
    assert_eq!(db.data_version().as_deref(), Some("2.0.0"));
    // PostgreSQL's own file ran, not the shared one.
    assert!(db.table_exists("learner_email"));
    assert_eq!(db.query_i64("SELECT count(*) FROM learner"), 3);
    let recorded: String = db
        .client()
        .query_one("SELECT checksum FROM uplift.migrations WHERE id = 2", &[])
        .unwrap()
        .get(0);
    let own = std::fs::read(v2.dir.join("migrations/postgres/0002_lesson.sql")).unwrap();
    assert_eq!(recorded, uplift::release::sha256_hex(&own));

    let list = run_in(&home, &v2.dir, &["migrations", "list"]);
    assert_ok(&list);
    assert!(
        stdout(&list).contains("0002_lesson.sql"),
        "{}",
        stdout(&list)
    );
    assert!(!stdout(&list).contains("pending"), "{}", stdout(&list));
    let history = run_in(&home, &v2.dir, &["history", "--json"]);
    assert_ok(&history);
    let entries: serde_json::Value = serde_json::from_str(&stdout(&history)).unwrap();
    let outcomes: Vec<&str> = entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["installed", "upgraded"]);

    // The backup: pg_dump's text in uplift's frame, listed, restorable.
    let made = backups(&home);
    assert_eq!(made.len(), 1, "{made:?}");
    let name = made[0].file_name().unwrap().to_str().unwrap().to_string();
    assert!(name.starts_with("db-v1.0.0_"), "{name}");
    let text = std::fs::read_to_string(&made[0]).unwrap();
    assert!(text.starts_with("-- uplift-dump-format: 1\n-- app: app\n-- data-version: 1.0.0\n"));
    assert!(
        text.contains("\n-- engine: postgresql "),
        "{}",
        &text[..300]
    );
    assert!(text.contains("\\restrict uplift\n"));
    let listed = run_in(&home, &v2.dir, &["backups", "list"]);
    assert_ok(&listed);
    assert!(stdout(&listed).contains(&name), "{}", stdout(&listed));

    let noop = run_in(&home, &v2.dir, &["upgrade"]);
    assert_ok(&noop);
    assert_eq!(backups(&home).len(), 1, "the no-op backs nothing up");
}

#[test]
fn postgres_backup_restores_with_psql_and_two_dumps_of_the_same_data_are_the_same() {
    let root = tempfile::tempdir().unwrap();
    let (v1, v2) = two_releases(root.path());
    // `uplift dbbackup` twice: the same data, the same text.
    let db = Db::new();
    let home = db.home(root.path());
    installed_with_rows(&db, &home, &v1);
    let mut bodies = Vec::new();
    for _ in 0..2 {
        let out = run_in(&home, &v1.dir, &["dbbackup"]);
        assert_ok(&out);
        let file = PathBuf::from(stdout(&out).trim());
        assert!(uplift::backup::verify(&file).unwrap().is_verified());
        bodies.push(dump_body(&file));
    }
    assert_eq!(bodies[0], bodies[1], "two dumps of the same data differ");
    // A SQLite home refuses to restore it; a PostgreSQL home says how.
    let file = backups(&home)[0].clone();
    let sqlite_home = root.path().join("sqlite-home");
    let refused = uplift()
        .arg("dbrestore")
        .arg(&file)
        .arg("--home")
        .arg(&sqlite_home)
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("backup of a postgresql"),
        "{}",
        stderr(&refused)
    );
    assert!(!sqlite_home.join("db.sqlite3").exists());

    // psql restores an upgrade's backup into an empty database, exactly.
    let db = Db::new();
    let home = db.home(root.path());
    installed_with_rows(&db, &home, &v1);
    assert_ok(&run_in(&home, &v2.dir, &["upgrade"]));
    let dump = &backups(&home)[0];
    let restored = Db::new();
    let out = client_tool("psql")
        .args(["-X", "-q", "-1", "-v", "ON_ERROR_STOP=1"])
        .arg("-h")
        .arg(&cluster().dir)
        .args(["-U", ROLE, "-d", &restored.name, "-f"])
        .arg(dump)
        .output()
        .unwrap();
    assert!(out.status.success(), "psql: {}", stderr(&out));
    assert_eq!(restored.data_version().as_deref(), Some("1.0.0"));
    assert!(!restored.table_exists("lesson"), "the backup is of 1.0.0");
    let names: Vec<String> = restored
        .client()
        .query("SELECT username FROM learner ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(names, ["ada", "bob", "it's me"]);
    // And the restored 1.0.0 upgrades like the original.
    let again = restored.home(root.path());
    assert_ok(&run_in(&again, &v2.dir, &["upgrade"]));
    assert_eq!(restored.data_version().as_deref(), Some("2.0.0"));
}

#[test]
fn postgres_a_failing_migration_rolls_back_everything_ddl_included() {
    let root = tempfile::tempdir().unwrap();
    let db = Db::new();
    let home = db.home(root.path());
    let v1 = TestRelease::new(root.path(), "r1", "app", "1.0.0", V1);
    installed_with_rows(&db, &home, &v1);
    let mut migrations = V1.to_vec();
    migrations.push((
        "0002_ok.sql",
        "CREATE TABLE lesson (id integer PRIMARY KEY);\nALTER TABLE learner ADD COLUMN email text;\n\
         UPDATE learner SET username = 'changed';\n",
    ));
    migrations.push((
        "0003_broken.sql",
        "CREATE TABLE badge (id integer);\n\nINSERT INTO nowhere VALUES (1);\n",
    ));
    let v2 = TestRelease::new(root.path(), "r2", "app", "2.0.0", &migrations);
    let out = run_in(&home, &v2.dir, &["upgrade"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(err.contains("migration 0003_broken.sql failed"), "{err}");
    assert!(err.contains("line 3"), "{err}");
    assert!(err.contains("nowhere"), "{err}");
    assert!(err.contains("rolled back"), "{err}");
    for table in ["lesson", "badge"] {
        assert!(!db.table_exists(table), "{table} survived the rollback");
    }
    let columns = db.query_i64(
        "SELECT count(*) FROM information_schema.columns WHERE table_name = 'learner' AND column_name = 'email'",
    );
    assert_eq!(columns, 0, "ALTER TABLE was rolled back");
    assert_eq!(
        db.query_i64("SELECT count(*) FROM learner WHERE username = 'changed'"),
        0
    );
    assert_eq!(db.data_version().as_deref(), Some("1.0.0"));
    assert_eq!(db.query_i64("SELECT count(*) FROM uplift.migrations"), 1);
    // The attempt is in the history, recorded after the rollback.
    let failed = db.query_i64("SELECT count(*) FROM uplift.history WHERE outcome = 'failed'");
    assert_eq!(failed, 1);
}

#[test]
fn postgres_refuses_statements_that_cannot_run_in_a_transaction_before_anything_starts() {
    let root = tempfile::tempdir().unwrap();
    let db = Db::new();
    let home = db.home(root.path());
    let v1 = TestRelease::new(root.path(), "r1", "app", "1.0.0", V1);
    installed_with_rows(&db, &home, &v1);
    let cases = [
        (
            "CREATE INDEX CONCURRENTLY learner_name ON learner (username);",
            "CREATE INDEX CONCURRENTLY",
        ),
        ("VACUUM learner;", "VACUUM"),
        ("CREATE DATABASE other;", "CREATE DATABASE"),
        ("ALTER SYSTEM SET work_mem = '8MB';", "ALTER SYSTEM"),
        (
            "REINDEX TABLE CONCURRENTLY learner;",
            "REINDEX TABLE CONCURRENTLY",
        ),
        ("COMMIT;", "COMMIT"),
    ];
    for (statement, named) in cases {
        let mut migrations = V1.to_vec();
        let sql = format!("CREATE TABLE lesson (id integer);\n-- then\n{statement}\n");
        migrations.push(("0002_bad.sql", sql.as_str()));
        let v2 = TestRelease::new(root.path(), "r2", "app", "2.0.0", &migrations);
        for args in [&["upgrade", "--plan"][..], &["upgrade"][..]] {
            let out = run_in(&home, &v2.dir, args);
            assert_eq!(out.status.code(), Some(1), "{statement}: {}", stdout(&out));
            let err = stderr(&out);
            assert!(err.contains("0002_bad.sql"), "{err}");
            assert!(err.contains(named), "{statement}: {err}");
            assert!(err.contains("line 3"), "{statement}: {err}");
        }
        assert!(!db.table_exists("lesson"));
        assert!(backups(&home).is_empty(), "nothing started, so no backup");
        std::fs::remove_dir_all(&v2.dir).unwrap();
    }
    assert_eq!(db.data_version().as_deref(), Some("1.0.0"));
    assert_eq!(db.query_i64("SELECT count(*) FROM uplift.history"), 1);
}

/// What uplift refuses, PostgreSQL itself refuses inside a transaction
/// block: the list is checked against the server.
#[test]
fn postgres_the_refused_statements_are_those_the_server_refuses_in_a_transaction() {
    let db = Db::new();
    let mut client = db.client();
    client
        .batch_execute("CREATE TABLE t (id integer); CREATE INDEX t_id ON t (id)")
        .unwrap();
    let refused = [
        "CREATE INDEX CONCURRENTLY t_id2 ON t (id)",
        "CREATE UNIQUE INDEX CONCURRENTLY t_id3 ON t (id)",
        "DROP INDEX CONCURRENTLY t_id",
        "REINDEX TABLE CONCURRENTLY t",
        "REINDEX SCHEMA public",
        &format!("REINDEX DATABASE {}", db.name),
        &format!("REINDEX SYSTEM {}", db.name),
        "VACUUM t",
        "CREATE DATABASE never",
        "DROP DATABASE never",
        "ALTER SYSTEM SET work_mem = '8MB'",
        "CREATE TABLESPACE never LOCATION '/nonexistent'",
        "DISCARD ALL",
        "CLUSTER",
    ];
    for statement in refused {
        let sql = format!("{statement};");
        let found = uplift::internals::postgres_refusals(&sql);
        assert_eq!(found.len(), 1, "uplift does not refuse {statement}");
        client.batch_execute("BEGIN").unwrap();
        let err = client
            .batch_execute(statement)
            .expect_err(&format!("{statement} ran in a transaction block"));
        client.batch_execute("ROLLBACK").unwrap();
        assert_eq!(
            err.code(),
            Some(&postgres::error::SqlState::ACTIVE_SQL_TRANSACTION),
            "{statement}: {err}"
        );
    }
    for allowed in [
        "REINDEX TABLE t",
        "CLUSTER t USING t_id",
        "CREATE INDEX t_id4 ON t (id)",
    ] {
        let sql = format!("{allowed};");
        assert!(
            uplift::internals::postgres_refusals(&sql).is_empty(),
            "{allowed}"
        );
        client.batch_execute("BEGIN").unwrap();
        client.batch_execute(allowed).unwrap();
        client.batch_execute("ROLLBACK").unwrap();
    }
}

/// Waits until `check` holds, for at most 30 s.
fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether uplift's session waits for, or holds, a lock of `mode`.
fn uplift_lock(db: &Db, mode: &str, granted: bool) -> bool {
    db.query_i64(&format!(
        "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)
         WHERE a.application_name = 'uplift' AND a.datname = '{}'
           AND l.mode = '{mode}' AND l.granted = {granted}",
        db.name
    )) > 0
}

#[test]
fn postgres_the_backup_holds_what_was_committed_while_uplift_waited_and_blocks_later_writers() {
    let root = tempfile::tempdir().unwrap();
    let db = Db::new();
    let home = db.home(root.path());
    let (v1, v2) = two_releases(root.path());
    installed_with_rows(&db, &home, &v1);

    // A writer in the middle of a transaction: uplift must wait for it.
    let mut early = db.client();
    early
        .batch_execute("BEGIN; INSERT INTO facility VALUES (10, 'early writer')")
        .unwrap();
    let mut upgrade = uplift();
    upgrade
        .args(["upgrade", "--home"])
        .arg(&home)
        .arg("--release")
        .arg(&v2.dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = upgrade.spawn().unwrap();
    wait_for("uplift to wait for the table lock", || {
        uplift_lock(&db, "ExclusiveLock", false)
    });
    early.batch_execute("COMMIT").unwrap();
    wait_for("uplift to hold the table locks", || {
        uplift_lock(&db, "ExclusiveLock", true)
    });
    // A writer that comes after the locks waits until the upgrade ends;
    // readers go on.
    assert_eq!(db.query_i64("SELECT count(*) FROM facility"), 3);
    let name = db.name.clone();
    let late = std::thread::spawn(move || {
        connect(&name)
            .batch_execute("INSERT INTO facility VALUES (11, 'late writer')")
            .unwrap();
        Instant::now()
    });
    let out = child.wait_with_output().unwrap();
    let done = Instant::now();
    assert_ok(&out);
    let late_at = late.join().unwrap();
    assert!(late_at >= done - Duration::from_secs(1));
    let dump = std::fs::read_to_string(&backups(&home)[0]).unwrap();
    assert!(
        dump.contains("10\tearly writer"),
        "the early writer's row is lost"
    );
    assert!(
        !dump.contains("late writer"),
        "the late writer was not held off"
    );
    assert_eq!(db.query_i64("SELECT count(*) FROM facility"), 4);
}

#[test]
fn postgres_a_second_uplift_on_the_same_database_is_refused_naming_the_first() {
    let root = tempfile::tempdir().unwrap();
    let db = Db::new();
    let first_home = db.home(root.path());
    let second_home = root.path().join("second");
    std::fs::create_dir_all(&second_home).unwrap();
    std::fs::copy(
        first_home.join("uplift.toml"),
        second_home.join("uplift.toml"),
    )
    .unwrap();
    let (v1, v2) = two_releases(root.path());
    installed_with_rows(&db, &first_home, &v1);

    // The first uplift waits for a table a session holds, holding the
    // upgrade lock meanwhile.
    let mut holder = db.client();
    holder
        .batch_execute("BEGIN; LOCK TABLE learner IN ROW EXCLUSIVE MODE")
        .unwrap();
    let first = uplift()
        .args(["upgrade", "--home"])
        .arg(&first_home)
        .arg("--release")
        .arg(&v2.dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the first uplift to wait for the table lock", || {
        uplift_lock(&db, "ExclusiveLock", false)
    });
    let second = run_in(&second_home, &v2.dir, &["upgrade"]);
    assert_eq!(second.status.code(), Some(1));
    let err = stderr(&second);
    assert!(err.contains("another uplift is upgrading"), "{err}");
    assert!(err.contains("server process"), "{err}");
    holder.batch_execute("COMMIT").unwrap();
    let first = first.wait_with_output().unwrap();
    assert_ok(&first);
    assert_eq!(db.data_version().as_deref(), Some("2.0.0"));
    // Once it is done, the second finds nothing to do.
    assert_ok(&run_in(&second_home, &v2.dir, &["upgrade"]));
    assert_eq!(db.query_i64("SELECT count(*) FROM uplift.migrations"), 2);
}

#[test]
fn postgres_a_release_whose_hooks_would_run_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let db = Db::new();
    let home = db.home(root.path());
    // The example application: 0.1.0 has no plugins and installs.
    let out = run_in(&home, &example_release("0.1.0"), &["upgrade"]);
    assert_ok(&out);
    assert_eq!(db.data_version().as_deref(), Some("0.1.0"));
    assert!(db.table_exists("learner"));
    // 0.2.0's badges plugin has hooks for it: refused, nothing run.
    let release = example_release("0.2.0");
    assert!(
        release.join("plugins/badges.wasm").is_file(),
        "the example plugins are missing: run scripts/build-plugins"
    );
    let out = run_in(&home, &release, &["upgrade"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(err.contains("badges/"), "{err}");
    assert!(
        err.contains("no sandbox") || err.contains("do not run on PostgreSQL"),
        "{err}"
    );
    assert!(err.contains("never runs a hook unsandboxed"), "{err}");
    assert_eq!(db.data_version().as_deref(), Some("0.1.0"));
    assert!(backups(&home).is_empty());
    let json = run_in(&home, &release, &["upgrade", "--json"]);
    let value: serde_json::Value = serde_json::from_str(&stdout(&json)).unwrap();
    assert_eq!(value["error"]["code"], "hooks-without-sandbox", "{value}");
}

#[test]
fn postgres_bad_settings_and_unreachable_servers_are_named_with_what_to_do() {
    let root = tempfile::tempdir().unwrap();
    let release = TestRelease::new(root.path(), "r1", "app", "1.0.0", V1);
    let db = Db::new();
    let socket = cluster().dir.display().to_string();
    let cases = [
        (
            "[database]\nurl = \"mysql://x@y/z\"\n",
            "is not a PostgreSQL URL",
        ),
        (
            "[database]\nurl = \"postgresql://uplift:secret@localhost/app\"\n",
            "holds a password",
        ),
        (
            "[database]\nurl = \"postgresql://uplift@localhost:99999/app\"\n",
            "does not parse",
        ),
        (
            "[database]\nhost = \"/nonexistent\"\ndbname = \"app\"\nuser = \"uplift\"\n",
            "could not reach the PostgreSQL server",
        ),
        (
            &format!("[database]\nhost = \"{socket}\"\ndbname = \"missing\"\nuser = \"uplift\"\n"),
            "has no database \"missing\"",
        ),
        (
            &format!(
                "[database]\nhost = \"{socket}\"\ndbname = \"{}\"\n",
                db.name
            ),
            "names no role",
        ),
        (
            &format!(
                "[database]\nhost = \"{socket}\"\ndbname = \"{}\"\nuser = \"uplift\"\npassword_file = \"/nonexistent/pw\"\n",
                db.name
            ),
            "could not read the password file /nonexistent/pw",
        ),
        ("[database]\nhots = \"x\"\n", "unknown field `hots`"),
    ];
    for (i, (toml, expected)) in cases.iter().enumerate() {
        let home = root.path().join(format!("home{i}"));
        std::fs::create_dir_all(&home).unwrap();
        std::fs::write(home.join("uplift.toml"), toml).unwrap();
        for args in [&["upgrade"][..], &["status"][..]] {
            let out = run_in(&home, &release.dir, args);
            assert_eq!(out.status.code(), Some(1), "{toml}: {}", stdout(&out));
            let err = stderr(&out);
            assert!(err.contains(expected), "{toml}: {err}");
            assert!(!err.contains("secret"), "the password is shown: {err}");
        }
        assert!(!home.join("db.sqlite3").exists(), "fell back to SQLite");
    }
    assert!(!db.table_exists("uplift.meta"));
}

#[test]
fn postgres_a_password_comes_from_the_password_file_and_never_from_the_command_line() {
    let root = tempfile::tempdir().unwrap();
    let db = Db::new();
    let mut admin = admin();
    admin
        .batch_execute(&format!(
            "CREATE ROLE pw_{0} LOGIN PASSWORD 'sesame'; GRANT ALL ON DATABASE {0} TO pw_{0}; \
             ALTER DATABASE {0} OWNER TO pw_{0}",
            db.name
        ))
        .unwrap();
    // The trust cluster would let any password in: require one for this role.
    let hba = cluster().dir.join("data/pg_hba.conf");
    let original = std::fs::read_to_string(&hba).unwrap();
    std::fs::write(
        &hba,
        format!("local all pw_{} scram-sha-256\n{original}", db.name),
    )
    .unwrap();
    admin.batch_execute("SELECT pg_reload_conf()").unwrap();
    let home = root.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let password_file = root.path().join("pw");
    let settings = |file: &Path| {
        format!(
            "[database]\nurl = \"postgresql://pw_{0}@/{0}?host={1}\"\npassword_file = \"{2}\"\n",
            db.name,
            cluster().dir.display(),
            file.display()
        )
    };
    std::fs::write(home.join("uplift.toml"), settings(&password_file)).unwrap();
    std::fs::File::create(&password_file)
        .unwrap()
        .write_all(b"wrong\n")
        .unwrap();
    let (v1, v2) = two_releases(root.path());
    let refused = run_in(&home, &v1.dir, &["upgrade"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains(&format!("refused role \"pw_{}\"", db.name)),
        "{}",
        stderr(&refused)
    );
    std::fs::write(&password_file, "sesame\n").unwrap();
    assert_ok(&run_in(&home, &v1.dir, &["upgrade"]));
    assert_ok(&run_in(&home, &v2.dir, &["upgrade"]));
    // uplift, and pg_dump for the backup (given the password in its
    // environment), connected as the role: it owns what was made.
    let owner: String = db
        .client()
        .query_one(
            "SELECT tableowner::text FROM pg_tables WHERE tablename = 'lesson'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(owner, format!("pw_{}", db.name));
    assert_eq!(backups(&home).len(), 1);
}

/// Waits until no session is connected to `db` (a closed client's server
/// process takes a moment to go).
fn wait_until_idle(db: &Db) {
    let mut admin = admin();
    wait_for("the test's sessions to close", || {
        let n: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1",
                &[&db.name],
            )
            .unwrap()
            .get(0);
        n == 0
    });
}

/// Rewrites a backup's text with `edit` and a checksum that matches again.
fn rewrite_backup(path: &Path, edit: impl Fn(&str) -> String) {
    use sha2::Digest as _;
    let text = std::fs::read_to_string(path).unwrap();
    let end = text.rfind("-- uplift-sha256: ").unwrap();
    let body = edit(&text[..end]);
    let sum: String = sha2::Sha256::digest(body.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    std::fs::write(path, format!("{body}-- uplift-sha256: {sum}\n")).unwrap();
}

fn leftover_databases(db: &Db) -> Vec<String> {
    admin()
        .query(
            "SELECT datname::text FROM pg_database WHERE datname LIKE $1",
            &[&format!("{}\\_uplift\\_%", db.name)],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[test]
fn postgres_dbrestore_latest_puts_the_backup_back_and_keeps_a_safety_backup() {
    let root = tempfile::tempdir().unwrap();
    let db = Db::new();
    let home = db.home(root.path());
    let (v1, v2) = two_releases(root.path());
    installed_with_rows(&db, &home, &v1);
    assert_ok(&run_in(&home, &v2.dir, &["upgrade"]));
    db.client()
        .batch_execute("INSERT INTO lesson (title) VALUES ('after the upgrade')")
        .unwrap();
    wait_until_idle(&db);

    // The installed release is 1.0.0 again: --latest picks the backup of 1.0.0.
    let out = run_in(&home, &v1.dir, &["dbrestore", "--latest"]);
    assert_ok(&out);
    assert!(
        stderr(&out).contains("data version 1.0.0"),
        "{}",
        stderr(&out)
    );
    // pg_amcheck (installed with the server) checked it.
    assert!(!stderr(&out).contains("not checked"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("3 rows") || stderr(&out).contains("rows)"),
        "{}",
        stderr(&out)
    );
    assert_eq!(db.data_version().as_deref(), Some("1.0.0"));
    assert!(!db.table_exists("lesson"));
    assert_eq!(db.query_i64("SELECT count(*) FROM learner"), 3);
    assert!(
        leftover_databases(&db).is_empty(),
        "{:?}",
        leftover_databases(&db)
    );
    // The database it replaced is in the safety backup.
    let safety: Vec<PathBuf> = backups(&home)
        .into_iter()
        .filter(|p| {
            std::fs::read_to_string(p)
                .unwrap()
                .contains("-- kind: pre-restore\n")
        })
        .collect();
    assert_eq!(safety.len(), 1);
    assert!(
        std::fs::read_to_string(&safety[0])
            .unwrap()
            .contains("after the upgrade")
    );
    // And the restored database upgrades again.
    wait_until_idle(&db);
    assert_ok(&run_in(&home, &v2.dir, &["upgrade"]));
    assert_eq!(db.data_version().as_deref(), Some("2.0.0"));
}

#[test]
fn postgres_dbrestore_refuses_while_other_sessions_are_connected_naming_them() {
    let root = tempfile::tempdir().unwrap();
    let db = Db::new();
    let home = db.home(root.path());
    let (v1, v2) = two_releases(root.path());
    installed_with_rows(&db, &home, &v1);
    assert_ok(&run_in(&home, &v2.dir, &["upgrade"]));
    let backup = backups(&home)[0].clone();
    let session = db.client();
    let out = uplift()
        .arg("dbrestore")
        .arg(&backup)
        .arg("--home")
        .arg(&home)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("is in use"), "{err}");
    assert!(err.contains("server process"), "{err}");
    assert!(
        err.contains("test"),
        "the application name is not shown: {err}"
    );
    drop(session);
    assert_eq!(db.data_version().as_deref(), Some("2.0.0"));
    assert_eq!(backups(&home).len(), 1, "no safety backup: nothing started");
    assert!(leftover_databases(&db).is_empty());
}

#[test]
fn postgres_dbrestore_refuses_a_damaged_or_failing_dump_and_leaves_the_database_as_it_was() {
    let root = tempfile::tempdir().unwrap();
    let db = Db::new();
    let home = db.home(root.path());
    let (v1, v2) = two_releases(root.path());
    installed_with_rows(&db, &home, &v1);
    assert_ok(&run_in(&home, &v2.dir, &["upgrade"]));
    let good = backups(&home)[0].clone();
    let restore = |file: &Path| {
        uplift()
            .arg("dbrestore")
            .arg(file)
            .arg("--home")
            .arg(&home)
            .output()
            .unwrap()
    };

    // One byte changed: the checksum no longer matches.
    let corrupt = root.path().join("corrupt.dump");
    let text = std::fs::read_to_string(&good).unwrap();
    std::fs::write(&corrupt, text.replacen("north", "nurth", 1)).unwrap();
    wait_until_idle(&db);
    let out = restore(&corrupt);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("is corrupt"), "{}", stderr(&out));

    // A dump whose SQL fails half-way: psql stops, nothing is swapped.
    let failing = root.path().join("failing.dump");
    std::fs::copy(&good, &failing).unwrap();
    rewrite_backup(&failing, |text| {
        text.replacen(
            "\n\\unrestrict uplift",
            "\nINSERT INTO public.learner VALUES (9, 999, 'no such facility');\n\\unrestrict uplift",
            1,
        )
    });
    let out = restore(&failing);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("could not restore"), "{err}");
    assert!(err.contains("foreign key"), "{err}");
    assert!(err.contains("left as it was"), "{err}");
    assert_eq!(db.data_version().as_deref(), Some("2.0.0"));
    assert!(db.table_exists("lesson"));
    assert!(
        leftover_databases(&db).is_empty(),
        "{:?}",
        leftover_databases(&db)
    );
}

#[test]
fn postgres_a_migration_past_its_time_limit_is_stopped_and_rolled_back() {
    let root = tempfile::tempdir().unwrap();
    let db = Db::new();
    let home = db.home(root.path());
    let v1 = TestRelease::new(root.path(), "r1", "app", "1.0.0", V1);
    installed_with_rows(&db, &home, &v1);
    let settings = std::fs::read_to_string(home.join("uplift.toml")).unwrap();
    std::fs::write(
        home.join("uplift.toml"),
        format!("{settings}\n[migrations]\ntimeout_seconds = 1\n"),
    )
    .unwrap();
    let mut migrations = V1.to_vec();
    migrations.push((
        "0002_slow.sql",
        "CREATE TABLE lesson (id integer);\nSELECT pg_sleep(30);\n",
    ));
    let v2 = TestRelease::new(root.path(), "r2", "app", "2.0.0", &migrations);
    let started = Instant::now();
    let out = run_in(&home, &v2.dir, &["upgrade", "--json"]);
    assert!(started.elapsed() < Duration::from_secs(20), "not stopped");
    assert_eq!(out.status.code(), Some(1));
    let value: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(value["error"]["code"], "migration-timeout", "{value}");
    assert!(
        stderr(&out).contains("0002_slow.sql ran longer than 1 s"),
        "{}",
        stderr(&out)
    );
    assert!(!db.table_exists("lesson"));
    assert_eq!(db.data_version().as_deref(), Some("1.0.0"));
}
