//! Which PostgreSQL database a home's `uplift.toml` names (`[database]`),
//! and connecting to it with errors an operator can act on: a bad URL, a
//! password where none may be written, a server that does not answer, a
//! database that does not exist, a role the server refuses.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use postgres::config::Host;
use postgres::error::SqlState;
use postgres::{Client, Config, NoTls};

use super::error::PgError;
use crate::home::DatabaseSettings;

/// The application name uplift's sessions carry (`pg_stat_activity`), by
/// which a restore or a second uplift tells them from the application's.
pub(crate) const APPLICATION_NAME: &str = "uplift";

/// A PostgreSQL database to connect to: the client's configuration (with
/// the password, when one was given, from the environment or a file) and
/// how messages name it.
#[derive(Clone)]
pub(crate) struct PgTarget {
    config: Config,
    /// The settings file that named it, for messages.
    settings: PathBuf,
    /// `postgresql://user@host:port/dbname`, never with a password.
    display: String,
}

impl std::fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password.
        f.debug_struct("PgTarget")
            .field("display", &self.display)
            .finish()
    }
}

impl PgTarget {
    /// The database `[database]` of the settings file `path` names. The
    /// password comes from `PGPASSWORD`, or else from `password_file`;
    /// one written in the URL is refused.
    pub(crate) fn from_settings(
        settings: &DatabaseSettings,
        path: &Path,
    ) -> Result<PgTarget, PgError> {
        let invalid = |message: String| PgError::Settings {
            path: path.to_path_buf(),
            message,
        };
        let mut config = match &settings.url {
            Some(url) => {
                if settings.host.is_some()
                    || settings.port.is_some()
                    || settings.dbname.is_some()
                    || settings.user.is_some()
                {
                    return Err(invalid(
                        "gives `url` and also `host`, `port`, `dbname` or `user`: give either the URL \
                         or the separate fields"
                            .into(),
                    ));
                }
                if !(url.starts_with("postgresql://") || url.starts_with("postgres://")) {
                    return Err(invalid(format!(
                        "`url` {url:?} is not a PostgreSQL URL: write postgresql://USER@HOST:PORT/DATABASE"
                    )));
                }
                Config::from_str(url).map_err(|e| {
                    invalid(format!(
                        "`url` {url:?} does not parse ({e}): write postgresql://USER@HOST:PORT/DATABASE \
                         (?host=/run/postgresql for a unix socket)"
                    ))
                })?
            }
            None => {
                let mut config = Config::new();
                match settings.host.as_deref() {
                    Some(host) if host.starts_with('/') => {
                        config.host_path(host);
                    }
                    Some(host) => {
                        config.host(host);
                    }
                    None => {
                        return Err(invalid(
                            "names no server: give `url`, or `host` (a host name, or the folder of \
                             the server's unix socket) with `dbname` and `user`"
                                .into(),
                        ));
                    }
                }
                if let Some(port) = settings.port {
                    config.port(port);
                }
                if let Some(dbname) = &settings.dbname {
                    config.dbname(dbname);
                }
                if let Some(user) = &settings.user {
                    config.user(user);
                }
                config
            }
        };
        if config.get_password().is_some() {
            return Err(invalid(
                "`url` holds a password: remove it, and give it in PGPASSWORD or in a file named by \
                 `password_file`"
                    .into(),
            ));
        }
        if config.get_dbname().is_none_or(str::is_empty) {
            return Err(invalid(
                "names no database: give its name (`dbname`, or the URL's path)".into(),
            ));
        }
        if config.get_user().is_none_or(str::is_empty) {
            return Err(invalid(
                "names no role: give the role uplift connects as (`user`, or the URL's USER@)"
                    .into(),
            ));
        }
        if config.get_hosts().is_empty() {
            return Err(invalid("names no server host".into()));
        }
        if let Some(password) = password(settings)? {
            config.password(password);
        }
        config.application_name(APPLICATION_NAME);
        let display = display(&config);
        Ok(PgTarget {
            config,
            settings: path.to_path_buf(),
            display,
        })
    }

    /// The same server and role, another database (a restore builds one
    /// beside the current database).
    pub(crate) fn with_dbname(&self, dbname: &str) -> PgTarget {
        let mut config = self.config.clone();
        config.dbname(dbname);
        let display = display(&config);
        PgTarget {
            config,
            settings: self.settings.clone(),
            display,
        }
    }

    /// `postgresql://user@host:port/dbname` (a unix socket's folder as
    /// `?host=`), without a password: how messages name the database.
    pub(crate) fn display(&self) -> &str {
        &self.display
    }

    /// The database's name.
    pub(crate) fn dbname(&self) -> &str {
        self.config.get_dbname().unwrap_or_default()
    }

    /// The role uplift connects as.
    pub(crate) fn user(&self) -> &str {
        self.config.get_user().unwrap_or_default()
    }

    /// The server, for messages: `host:port` or `the unix socket in DIR`.
    fn server(&self) -> String {
        let port = self.config.get_ports().first().copied().unwrap_or(5432);
        match self.config.get_hosts().first() {
            Some(Host::Unix(dir)) => format!("the unix socket in {} (port {port})", dir.display()),
            Some(Host::Tcp(host)) => format!("{host}:{port}"),
            None => "no host".into(),
        }
    }

    /// The connection string a PostgreSQL tool (`pg_dump`, `psql`) is
    /// given, without the password, which [`PgTarget::password`] hands to
    /// it through the environment (`PGPASSWORD`), never its command line.
    pub(crate) fn conninfo(&self) -> String {
        let mut parts = Vec::new();
        if let Some(host) = self.config.get_hosts().first() {
            let host = match host {
                Host::Unix(dir) => dir.display().to_string(),
                Host::Tcp(host) => host.clone(),
            };
            parts.push(format!("host={}", conninfo_value(&host)));
        }
        if let Some(port) = self.config.get_ports().first() {
            parts.push(format!("port={port}"));
        }
        parts.push(format!("user={}", conninfo_value(self.user())));
        parts.push(format!("dbname={}", conninfo_value(self.dbname())));
        parts.push(format!("application_name={APPLICATION_NAME}"));
        parts.join(" ")
    }

    /// A tool's connection options (`-h HOST -p PORT -U USER`), for the
    /// tools that take a database name apart from them (`pg_amcheck`).
    pub(crate) fn tool_options(&self) -> Vec<String> {
        let mut options = Vec::new();
        if let Some(host) = self.config.get_hosts().first() {
            options.push("-h".into());
            options.push(match host {
                Host::Unix(dir) => dir.display().to_string(),
                Host::Tcp(host) => host.clone(),
            });
        }
        if let Some(port) = self.config.get_ports().first() {
            options.push("-p".into());
            options.push(port.to_string());
        }
        options.push("-U".into());
        options.push(self.user().to_string());
        options
    }

    /// The password, for a tool's `PGPASSWORD`.
    pub(crate) fn password(&self) -> Option<String> {
        self.config
            .get_password()
            .map(|p| String::from_utf8_lossy(p).into_owned())
    }

    /// Connects, with errors naming the server, the database or the role
    /// and what to do.
    pub(crate) fn connect(&self) -> Result<Client, PgError> {
        self.config
            .connect(NoTls)
            .map_err(|source| match source.code() {
                Some(code) if *code == SqlState::INVALID_CATALOG_NAME => PgError::NoDatabase {
                    dbname: self.dbname().to_string(),
                    server: self.server(),
                    settings: self.settings.clone(),
                },
                Some(code)
                    if *code == SqlState::INVALID_PASSWORD
                        || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION =>
                {
                    PgError::Refused {
                        user: self.user().to_string(),
                        server: self.server(),
                        settings: self.settings.clone(),
                        source,
                    }
                }
                _ => PgError::Unreachable {
                    server: self.server(),
                    settings: self.settings.clone(),
                    source,
                },
            })
    }
}

/// The password: `PGPASSWORD`, else the first line of `password_file`.
fn password(settings: &DatabaseSettings) -> Result<Option<String>, PgError> {
    if let Some(password) = std::env::var_os("PGPASSWORD") {
        return Ok(Some(password.to_string_lossy().into_owned()));
    }
    let Some(file) = &settings.password_file else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(file).map_err(|source| PgError::PasswordFile {
        path: file.clone(),
        source,
    })?;
    Ok(Some(text.lines().next().unwrap_or_default().to_string()))
}

/// How messages name a database: a URL without the password.
fn display(config: &Config) -> String {
    let user = config.get_user().unwrap_or_default();
    let dbname = config.get_dbname().unwrap_or_default();
    let port = config.get_ports().first().copied();
    match config.get_hosts().first() {
        Some(Host::Unix(dir)) => {
            let port = port.map(|p| format!("&port={p}")).unwrap_or_default();
            format!("postgresql://{user}@/{dbname}?host={}{port}", dir.display())
        }
        Some(Host::Tcp(host)) => {
            let port = port.map(|p| format!(":{p}")).unwrap_or_default();
            format!("postgresql://{user}@{host}{port}/{dbname}")
        }
        None => format!("postgresql://{user}@/{dbname}"),
    }
}

/// A value of a libpq connection string, quoted.
fn conninfo_value(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(url: &str) -> DatabaseSettings {
        DatabaseSettings {
            url: Some(url.into()),
            ..DatabaseSettings::default()
        }
    }

    fn refused(settings: &DatabaseSettings) -> String {
        match PgTarget::from_settings(settings, Path::new("/h/uplift.toml")) {
            Ok(t) => panic!("accepted: {}", t.display()),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_url_names_server_database_and_role() {
        let target = PgTarget::from_settings(
            &settings("postgresql://app@db.example.org:5433/learnhub"),
            Path::new("uplift.toml"),
        )
        .unwrap();
        assert_eq!(
            target.display(),
            "postgresql://app@db.example.org:5433/learnhub"
        );
        assert_eq!(target.dbname(), "learnhub");
        assert!(target.conninfo().contains("dbname='learnhub'"));
    }

    #[test]
    fn a_socket_folder_is_a_host() {
        let target = PgTarget::from_settings(
            &DatabaseSettings {
                host: Some("/run/postgresql".into()),
                dbname: Some("learnhub".into()),
                user: Some("app".into()),
                ..DatabaseSettings::default()
            },
            Path::new("uplift.toml"),
        )
        .unwrap();
        assert_eq!(
            target.display(),
            "postgresql://app@/learnhub?host=/run/postgresql"
        );
    }

    #[test]
    fn bad_settings_are_refused_with_what_to_do() {
        assert!(refused(&settings("mysql://a@b/c")).contains("is not a PostgreSQL URL"));
        assert!(refused(&settings("postgresql://a:secret@b/c")).contains("holds a password"));
        assert!(refused(&settings("postgresql://a@b")).contains("names no database"));
        assert!(refused(&settings("postgresql://a@b:notaport/c")).contains("does not parse"));
        let both = DatabaseSettings {
            dbname: Some("x".into()),
            ..settings("postgresql://a@b/c")
        };
        assert!(refused(&both).contains("either the URL"));
        assert!(refused(&DatabaseSettings::default()).contains("names no server"));
    }
}
