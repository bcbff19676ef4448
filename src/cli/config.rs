//! Settings from a file, the environment and flags, in one place: the clap command.
//!
//! Every setting is a long flag (`--batch-size`), an environment variable
//! (`CDRFLOW_BATCH_SIZE`) and a key of the settings file (`batch_size`): the key is the
//! variable's name without `CDRFLOW_`, in lower case. The file is `cdrflow.toml` in the
//! working directory if there is one, or the file named by `--config FILE` or
//! `CDRFLOW_CONFIG`. Its values become the command's defaults, so the environment
//! overrides the file and a flag overrides both. Each value is checked with the flag's
//! own parser before anything starts, and an error names the file and the key.
//!
//! The file's `[kafka]` table holds librdkafka properties passed through to every Kafka
//! client (`--kafka-property` adds to and overrides it; see [`crate::kafka::settings`]).
//!
//! A secret ([`SECRETS`]) can also come from a file, for Docker and Kubernetes secrets:
//! `<key>_file` in the settings file or `CDRFLOW_<KEY>_FILE` in the environment names a
//! file whose content, without its trailing newline, is the value. The order, first
//! wins: the flag, `CDRFLOW_<KEY>`, `CDRFLOW_<KEY>_FILE`, then the settings file's
//! `<key>` or `<key>_file` (giving both in the file, or both variables, is an error). A
//! secret's value is never shown, in `--help` or in an error.

use crate::kafka::settings::check_property;
use clap::{Arg, Command};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The file read when neither `--config` nor `CDRFLOW_CONFIG` names one.
pub const DEFAULT_FILE: &str = "cdrflow.toml";

/// Settings whose values are never shown (`--help` defaults, errors), each of which can
/// also be read from a file. A key no command has is skipped.
pub const SECRETS: [&str; 4] = [
    "database_url",
    "kafka_sasl_password",
    "kafka_ssl_key_password",
    "api_token",
];

/// The settings file's table of librdkafka properties.
const KAFKA_TABLE: &str = "kafka";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the settings file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    /// A secret's file (never its content).
    #[error("`{setting}`: cannot read {path}: {source}")]
    SecretFile {
        setting: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Environment(String),
}

/// The settings file's values, by key, as text.
#[derive(Debug, Default)]
pub struct FileSettings {
    pub path: Option<PathBuf>,
    values: BTreeMap<String, String>,
    /// The `[kafka]` table.
    kafka: BTreeMap<String, String>,
}

/// Which file to read: `--config FILE` (or `--config=FILE`) among the arguments, else
/// `CDRFLOW_CONFIG`, else `cdrflow.toml` if it exists.
fn locate(args: &[OsString], env: Option<OsString>) -> Option<PathBuf> {
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        if a == "--" {
            break;
        }
        if a == "--config" {
            return it.next().map(PathBuf::from);
        }
        if let Some(p) = a.to_str().and_then(|s| s.strip_prefix("--config=")) {
            return Some(PathBuf::from(p));
        }
    }
    if let Some(p) = env.filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    Path::new(DEFAULT_FILE)
        .exists()
        .then(|| PathBuf::from(DEFAULT_FILE))
}

impl FileSettings {
    /// Read the settings file the arguments and environment point at, if any.
    pub fn load(args: &[OsString]) -> Result<FileSettings, ConfigError> {
        let Some(path) = locate(args, std::env::var_os("CDRFLOW_CONFIG")) else {
            return Ok(FileSettings::default());
        };
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        FileSettings::parse(&path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<FileSettings, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        // The message and the place only: the error's own text quotes the line, which
        // may hold the database password.
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            let at = e.span().map(|s| place(text, s.start)).unwrap_or_default();
            invalid(format!("{at}{}", e.message().trim_end()))
        })?;
        let mut values = BTreeMap::new();
        let mut kafka = BTreeMap::new();
        for (key, value) in table {
            if let (KAFKA_TABLE, toml::Value::Table(properties)) = (key.as_str(), &value) {
                for (property, value) in properties {
                    let text = scalar(value.clone()).map_err(|kind| {
                        invalid(format!(
                            "[kafka] `{property}` must be a string, a number or a boolean, not {kind}"
                        ))
                    })?;
                    kafka.insert(property.clone(), text);
                }
                continue;
            }
            let text = scalar(value).map_err(|kind| {
                invalid(format!(
                    "`{key}` must be a string, a number or a boolean, not {kind}"
                ))
            })?;
            values.insert(key, text);
        }
        Ok(FileSettings {
            path: Some(path.to_path_buf()),
            values,
            kafka,
        })
    }

    /// The command with the file's values and the secrets' files as defaults, after
    /// checking that every key is a setting and every value passes that setting's parser.
    pub fn apply(&self, command: Command) -> Result<Command, ConfigError> {
        self.apply_with(command, &|name| std::env::var_os(name))
    }

    /// [`FileSettings::apply`] with the environment given as a function.
    fn apply_with(
        &self,
        command: Command,
        env: &dyn Fn(&str) -> Option<OsString>,
    ) -> Result<Command, ConfigError> {
        let mut known = BTreeMap::new();
        settings(&command, &mut known);
        let mut defaults = self.checked(&known)?;
        for key in SECRETS.iter().filter(|key| known.contains_key(**key)) {
            let env_key = format!("CDRFLOW_{}", key.to_ascii_uppercase());
            let env_file = format!("{env_key}_FILE");
            let Some(file) = env(&env_file).filter(|f| !f.is_empty()) else {
                continue;
            };
            if env(&env_key).is_some_and(|v| !v.is_empty()) {
                return Err(ConfigError::Environment(format!(
                    "both {env_key} and {env_file} are set: set one"
                )));
            }
            let value = read_secret(&env_file, Path::new(&file))?;
            let (sub, arg) = &known[*key];
            check(sub, arg, &value)
                .map_err(|message| ConfigError::Environment(format!("{env_file}: {message}")))?;
            defaults.insert(key.to_string(), value);
        }
        let properties: Vec<String> = self.kafka.iter().map(|(k, v)| format!("{k}={v}")).collect();
        Ok(with_defaults(command, &defaults, &properties))
    }

    /// The file's values by setting, each checked, with the secrets of `<key>_file` keys
    /// read.
    fn checked(
        &self,
        known: &BTreeMap<String, (Command, Arg)>,
    ) -> Result<BTreeMap<String, String>, ConfigError> {
        let Some(path) = &self.path else {
            return Ok(BTreeMap::new());
        };
        let mut values = self.values.clone();
        for key in SECRETS.iter().filter(|key| known.contains_key(**key)) {
            let file_key = format!("{key}_file");
            let Some(file) = values.remove(&file_key) else {
                continue;
            };
            if values.contains_key(*key) {
                return Err(ConfigError::Invalid {
                    path: path.clone(),
                    message: format!("both `{key}` and `{file_key}` are given: keep one"),
                });
            }
            values.insert(key.to_string(), read_secret(&file_key, Path::new(&file))?);
        }
        for (property, value) in &self.kafka {
            check_property(property, value).map_err(|e| ConfigError::Invalid {
                path: path.clone(),
                message: format!("[kafka] {e}"),
            })?;
        }
        for (key, value) in &values {
            let Some((sub, arg)) = known.get(key) else {
                let mut names: Vec<&str> = known.keys().map(String::as_str).collect();
                names.sort_unstable();
                return Err(ConfigError::Invalid {
                    path: path.clone(),
                    message: format!(
                        "unknown setting `{key}`; the settings are: {}",
                        names.join(", ")
                    ),
                });
            };
            check(sub, arg, value).map_err(|message| ConfigError::Invalid {
                path: path.clone(),
                message: format!("`{key}`: {message}"),
            })?;
        }
        Ok(values)
    }
}

/// A TOML value as a flag's text, or the name of its type if it has none.
fn scalar(value: toml::Value) -> Result<String, &'static str> {
    match value {
        toml::Value::String(s) => Ok(s),
        toml::Value::Integer(i) => Ok(i.to_string()),
        toml::Value::Float(f) => Ok(f.to_string()),
        toml::Value::Boolean(b) => Ok(b.to_string()),
        other => Err(other.type_str()),
    }
}

/// A secret's value from the file `path` that `setting` names: its content without the
/// trailing newline. An error names the setting and the file, never what it holds.
fn read_secret(setting: &str, path: &Path) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::SecretFile {
        setting: setting.to_string(),
        path: path.to_path_buf(),
        source,
    })?;
    Ok(text.trim_end_matches(['\n', '\r']).to_string())
}

/// Run `value` through the argument's own parser, as if given as its flag.
fn check(command: &Command, arg: &Arg, value: &str) -> Result<(), String> {
    if !arg.get_action().takes_values() {
        // A switch (`--no-publish`): the file says true or false.
        return match value {
            "true" | "false" => Ok(()),
            _ => Err(format!("must be true or false, not `{value}`")),
        };
    }
    let long = arg.get_long().unwrap_or_default();
    let alone = Command::new(command.get_name().to_string())
        .no_binary_name(true)
        .arg(arg.clone().required(false));
    alone
        .try_get_matches_from([OsString::from(format!("--{long}")), OsString::from(value)])
        .map(|_| ())
        .map_err(|e| first_line(&e, secret(&key_of(arg).unwrap_or_default()), value))
}

/// "line L, column C: " of a byte offset.
fn place(text: &str, offset: usize) -> String {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!("line {line}, column {column}: ")
}

/// The file key of an argument: its environment variable without `CDRFLOW_`.
fn key_of(arg: &Arg) -> Option<String> {
    let env = arg.get_env()?.to_str()?;
    let key = env.strip_prefix("CDRFLOW_")?.to_ascii_lowercase();
    (key != "config").then_some(key)
}

fn secret(key: &str) -> bool {
    SECRETS.contains(&key)
}

/// Every setting of the command and its subcommands: key → (the command that has it, the
/// argument), for checking values.
fn settings(command: &Command, out: &mut BTreeMap<String, (Command, Arg)>) {
    for arg in command.get_arguments() {
        if let Some(key) = key_of(arg) {
            out.entry(key)
                .or_insert_with(|| (command.clone(), arg.clone()));
        }
    }
    for sub in command.get_subcommands() {
        settings(sub, out);
    }
}

/// `command` with `values` as its settings' defaults, and `kafka_properties` (the
/// `[kafka]` table as `KEY=VALUE`) as the hidden flag's that carries them.
fn with_defaults(
    mut command: Command,
    values: &BTreeMap<String, String>,
    kafka_properties: &[String],
) -> Command {
    let table: Option<clap::Id> = command
        .get_arguments()
        .find(|a| a.get_long() == Some(super::FILE_PROPERTY_FLAG))
        .map(|a| a.get_id().clone());
    if let (Some(id), false) = (table, kafka_properties.is_empty()) {
        let properties: Vec<clap::builder::OsStr> =
            kafka_properties.iter().map(|p| p.into()).collect();
        command = command.mut_arg(id, |a| a.default_values(properties));
    }
    let found: Vec<(clap::Id, String, String)> = command
        .get_arguments()
        .filter_map(|a| {
            let key = key_of(a)?;
            let value = values.get(&key)?;
            Some((a.get_id().clone(), key, value.clone()))
        })
        .collect();
    for (id, key, value) in found {
        command = command.mut_arg(id, |a| {
            a.default_value(value).hide_default_value(secret(&key))
        });
    }
    let subs: Vec<String> = command
        .get_subcommands()
        .map(|s| s.get_name().to_string())
        .collect();
    for name in subs {
        command = command.mut_subcommand(name, |s| with_defaults(s, values, kafka_properties));
    }
    command
}

/// The gist of a clap error, without its usage block; a secret's value is masked.
fn first_line(e: &clap::Error, secret: bool, value: &str) -> String {
    let text = e.to_string();
    let line = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("invalid value")
        .trim_start_matches("error: ")
        .to_string();
    if secret {
        line.replace(value, "***")
    } else {
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn command(text: &str) -> Result<Command, ConfigError> {
        FileSettings::parse(Path::new("cdrflow.toml"), text)?.apply(crate::cli::Cli::command())
    }

    fn run_args(text: &str, argv: &[&str]) -> crate::cli::run::RunArgs {
        use clap::FromArgMatches;
        let matches = command(text).unwrap().try_get_matches_from(argv).unwrap();
        match crate::cli::Cli::from_arg_matches(&matches).unwrap().command {
            crate::cli::Command::Run(args) => args,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_file_value_is_the_default_and_a_flag_overrides_it() {
        let text = "batch_size = 1234\ntopic = \"cdr.file\"\n";
        let args = run_args(text, &["cdrflow", "run"]);
        assert_eq!((args.batch_size, args.topic.as_str()), (1234, "cdr.file"));
        let args = run_args(text, &["cdrflow", "run", "--batch-size", "77"]);
        assert_eq!((args.batch_size, args.topic.as_str()), (77, "cdr.file"));
        // Settings the file leaves out keep their built-in defaults.
        assert_eq!(args.committers, 2);
        assert!(!args.no_publish);
        assert!(run_args("no_publish = true\n", &["cdrflow", "run"]).no_publish);
        assert_eq!(
            run_args("close_after_days = 3\n", &["cdrflow", "run"]).close_after_days,
            Some(3)
        );
    }

    #[test]
    fn the_outputs_published_are_a_list_all_by_default() {
        use crate::cli::run::Output::{Alerts, Normalized, Rejected};
        let all = run_args("", &["cdrflow", "run"]);
        assert_eq!(all.publish, [Normalized, Rejected, Alerts]);
        let file = run_args("publish = \"rejected,alerts\"\n", &["cdrflow", "run"]);
        assert_eq!(file.publish, [Rejected, Alerts]);
        let flag = run_args("", &["cdrflow", "run", "--publish", "alerts"]);
        assert_eq!(flag.publish, [Alerts]);
        let wrong =
            command("")
                .unwrap()
                .try_get_matches_from(["cdrflow", "run", "--publish", "cdr"]);
        let message = wrong.unwrap_err().to_string();
        assert!(
            message.contains("normalized, rejected, alerts"),
            "{message}"
        );
        assert!(command("publish = \"normalized,bogus\"\n").is_err());
    }

    #[test]
    fn a_value_shared_by_several_commands_applies_to_each() {
        use clap::FromArgMatches;
        let text = "database_url = \"postgres://billing:s3cret@db.example:5432/cdrflow\"\n";
        for argv in [
            &["cdrflow", "catalog", "show"][..],
            &["cdrflow", "migrate"],
            &["cdrflow", "stats"],
            &["cdrflow", "bill", "--period", "2026-09"],
            &["cdrflow", "run"],
        ] {
            let matches = command(text).unwrap().try_get_matches_from(argv).unwrap();
            let cli = crate::cli::Cli::from_arg_matches(&matches).unwrap();
            assert!(
                format!("{cli:?}").contains("db.example"),
                "{argv:?}: {cli:?}"
            );
        }
    }

    #[test]
    fn an_unknown_key_is_named() {
        let e = command("batch_sise = 10\n").unwrap_err().to_string();
        assert!(
            e.starts_with("cdrflow.toml: unknown setting `batch_sise`"),
            "{e}"
        );
        assert!(e.contains("batch_size"), "{e}");
    }

    #[test]
    fn a_bad_value_is_named_with_the_reason() {
        let e = command("batch_size = 0\n").unwrap_err().to_string();
        assert!(e.starts_with("cdrflow.toml: `batch_size`:"), "{e}");
        assert!(e.contains("0 is not in 1..=100000"), "{e}");
        let e = command("timezone = \"Mars/Olympus\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`timezone`") && e.contains("Mars/Olympus"),
            "{e}"
        );
        let e = command("committers = [1, 2]\n").unwrap_err().to_string();
        assert!(
            e.contains("`committers` must be a string, a number or a boolean"),
            "{e}"
        );
    }

    #[test]
    fn a_syntax_error_names_the_file_and_line_and_never_quotes_it() {
        let e = command("batch_size = \n").unwrap_err().to_string();
        assert!(e.starts_with("cdrflow.toml: line 1, column "), "{e}");
        let e = command("group = \"g\"\ndatabase_url = \"postgres://u:s3cret@h/db\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("cdrflow.toml: line 2, column "), "{e}");
        assert!(!e.contains("s3cret"), "{e}");
    }

    #[test]
    fn the_database_password_never_shows_in_help() {
        let text = "database_url = \"postgres://billing:s3cret@db.example:5432/cdrflow\"\n";
        let mut cmd = command(text).unwrap();
        let help = cmd
            .find_subcommand_mut("run")
            .unwrap()
            .render_long_help()
            .to_string();
        assert!(help.contains("--database-url"), "{help}");
        assert!(!help.contains("s3cret"), "{help}");
        let help = cmd
            .find_subcommand_mut("migrate")
            .unwrap()
            .render_long_help()
            .to_string();
        assert!(!help.contains("s3cret"), "{help}");
    }

    #[test]
    fn the_file_is_found_by_flag_then_environment_then_working_directory() {
        let args = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(
            locate(
                &args(&["cdrflow", "--config", "a.toml", "run"]),
                Some("b.toml".into())
            ),
            Some(PathBuf::from("a.toml"))
        );
        assert_eq!(
            locate(&args(&["cdrflow", "run", "--config=c.toml"]), None),
            Some(PathBuf::from("c.toml"))
        );
        assert_eq!(
            locate(&args(&["cdrflow", "run"]), Some("b.toml".into())),
            Some(PathBuf::from("b.toml"))
        );
    }

    /// A file of the test's own holding `content`.
    fn secret_file(name: &str, content: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("cdrflow-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, content).unwrap();
        path
    }

    fn toml_path(path: &Path) -> String {
        format!("{:?}", path.display().to_string())
    }

    /// The command for `text` with `env` as the environment's `_FILE` variables.
    fn command_with_env(text: &str, env: &[(&str, &str)]) -> Result<Command, ConfigError> {
        let env: BTreeMap<String, OsString> = env
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        FileSettings::parse(Path::new("cdrflow.toml"), text)?
            .apply_with(crate::cli::Cli::command(), &|name| env.get(name).cloned())
    }

    fn run_with_env(text: &str, env: &[(&str, &str)], argv: &[&str]) -> crate::cli::run::RunArgs {
        use clap::FromArgMatches;
        let matches = command_with_env(text, env)
            .unwrap()
            .try_get_matches_from(argv)
            .unwrap();
        match crate::cli::Cli::from_arg_matches(&matches).unwrap().command {
            crate::cli::Command::Run(args) => args,
            other => panic!("{other:?}"),
        }
    }

    const SASL: [&str; 8] = [
        "cdrflow",
        "run",
        "--kafka-security-protocol",
        "sasl_plaintext",
        "--kafka-sasl-mechanism",
        "SCRAM-SHA-512",
        "--kafka-sasl-username",
        "billing",
    ];

    fn sasl_password(args: &crate::cli::run::RunArgs) -> &str {
        args.kafka.sasl.as_ref().unwrap().password.expose()
    }

    #[test]
    fn a_secret_is_read_from_the_file_its_file_key_names_without_the_trailing_newline() {
        let password = secret_file("sasl-password", "pass word\n");
        let url = secret_file("database-url", "postgres://u:s3cret@db.example/x\r\n");
        let text = format!(
            "kafka_sasl_password_file = {}\ndatabase_url_file = {}\n",
            toml_path(&password),
            toml_path(&url)
        );
        let args = run_with_env(&text, &[], &SASL);
        assert_eq!(sasl_password(&args), "pass word");
        assert_eq!(args.db.database_url, "postgres://u:s3cret@db.example/x");
    }

    #[test]
    fn a_flag_beats_the_environment_file_which_beats_the_settings_file() {
        let from_env = secret_file("env-password", "from-env-file\n");
        let from_file = secret_file("file-password", "from-file-key-file\n");
        let env = [(
            "CDRFLOW_KAFKA_SASL_PASSWORD_FILE",
            from_env.to_str().unwrap(),
        )];
        let key = "kafka_sasl_password = \"from-file-key\"\n";
        let key_file = format!("kafka_sasl_password_file = {}\n", toml_path(&from_file));
        assert_eq!(
            sasl_password(&run_with_env(key, &[], &SASL)),
            "from-file-key"
        );
        assert_eq!(
            sasl_password(&run_with_env(&key_file, &[], &SASL)),
            "from-file-key-file"
        );
        assert_eq!(
            sasl_password(&run_with_env(key, &env, &SASL)),
            "from-env-file"
        );
        assert_eq!(
            sasl_password(&run_with_env(&key_file, &env, &SASL)),
            "from-env-file"
        );
        let mut argv = SASL.to_vec();
        argv.extend(["--kafka-sasl-password", "from-flag"]);
        assert_eq!(sasl_password(&run_with_env(key, &env, &argv)), "from-flag");
    }

    #[test]
    fn a_secret_and_its_file_given_in_the_same_place_are_refused_naming_both() {
        let path = secret_file("both", "x\n");
        let text = format!(
            "kafka_sasl_password = \"s3cret\"\nkafka_sasl_password_file = {}\n",
            toml_path(&path)
        );
        let e = command_with_env(&text, &[]).unwrap_err().to_string();
        assert_eq!(
            e,
            "cdrflow.toml: both `kafka_sasl_password` and `kafka_sasl_password_file` are given: keep one"
        );
        let e = command_with_env(
            "",
            &[
                ("CDRFLOW_KAFKA_SSL_KEY_PASSWORD", "s3cret"),
                (
                    "CDRFLOW_KAFKA_SSL_KEY_PASSWORD_FILE",
                    path.to_str().unwrap(),
                ),
            ],
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "both CDRFLOW_KAFKA_SSL_KEY_PASSWORD and CDRFLOW_KAFKA_SSL_KEY_PASSWORD_FILE are set: set one"
        );
    }

    #[test]
    fn an_unreadable_secret_file_is_named_with_its_setting_and_never_shown() {
        let e = command_with_env("kafka_sasl_password_file = \"/nonexistent/sasl\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("`kafka_sasl_password_file`: cannot read /nonexistent/sasl: "),
            "{e}"
        );
        let e = command_with_env("", &[("CDRFLOW_DATABASE_URL_FILE", "/nonexistent/db")])
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("`CDRFLOW_DATABASE_URL_FILE`: cannot read /nonexistent/db: "),
            "{e}"
        );
        // Binary content is refused without being quoted.
        let binary = secret_file("binary", "");
        std::fs::write(&binary, b"s3cret\xff\xfe").unwrap();
        let e = command_with_env(
            &format!("kafka_ssl_key_password_file = {}\n", toml_path(&binary)),
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("kafka_ssl_key_password_file"), "{e}");
        assert!(!e.contains("s3cret"), "{e}");
    }

    #[test]
    fn a_secret_no_command_has_is_skipped() {
        // A command without an API token: its file variable is not read at all.
        let cmd = Command::new("x").arg(
            Arg::new("database_url")
                .long("database-url")
                .env("CDRFLOW_DATABASE_URL"),
        );
        let env = |name: &str| {
            (name == "CDRFLOW_API_TOKEN_FILE").then(|| OsString::from("/nonexistent/token"))
        };
        FileSettings::default()
            .apply_with(cmd.clone(), &env)
            .unwrap();
        let e = FileSettings::parse(Path::new("c.toml"), "api_token_file = \"/x\"\n")
            .unwrap()
            .apply_with(cmd, &env)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("c.toml: unknown setting `api_token_file`"),
            "{e}"
        );
    }

    #[test]
    fn the_kafka_table_passes_properties_through_and_a_flag_overrides_one() {
        let text = "[kafka]\n\"client.id\" = \"billing-1\"\n\"fetch.max.bytes\" = 1048576\n\"enable.ssl.certificate.verification\" = true\n";
        let args = run_args(text, &["cdrflow", "run"]);
        let p = &args.kafka.properties;
        assert_eq!(p["client.id"], "billing-1");
        assert_eq!(p["fetch.max.bytes"], "1048576");
        assert_eq!(p["enable.ssl.certificate.verification"], "true");
        let args = run_args(
            text,
            &["cdrflow", "run", "--kafka-property", "client.id=billing-2"],
        );
        assert_eq!(args.kafka.properties["client.id"], "billing-2");
        assert_eq!(args.kafka.properties["fetch.max.bytes"], "1048576");
    }

    #[test]
    fn the_kafka_table_refuses_what_cdrflow_sets_and_what_librdkafka_does_not_know() {
        let e = command("[kafka]\n\"group.id\" = \"other\"\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "cdrflow.toml: [kafka] `group.id` is cdrflow's `group` setting (--group, CDRFLOW_GROUP): set it there"
        );
        let e = command("[kafka]\n\"fetch.max.byts\" = 1\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("cdrflow.toml: [kafka] librdkafka refuses `fetch.max.byts`: "),
            "{e}"
        );
        let e = command("[kafka]\n\"client.id\" = [1]\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("[kafka] `client.id` must be a string, a number or a boolean"),
            "{e}"
        );
    }

    #[test]
    fn kafka_secrets_never_show_in_help() {
        let text = "kafka_security_protocol = \"sasl_ssl\"\nkafka_sasl_mechanism = \"PLAIN\"\nkafka_sasl_username = \"billing\"\nkafka_sasl_password = \"s3cret-sasl\"\nkafka_ssl_key_password = \"s3cret-key\"\n[kafka]\n\"ssl.keystore.password\" = \"s3cret-prop\"\n";
        let mut cmd = command(text).unwrap();
        for name in ["run", "generate", "replay", "explain", "demo"] {
            let help = cmd
                .find_subcommand_mut(name)
                .unwrap()
                .render_long_help()
                .to_string();
            assert!(help.contains("--kafka-sasl-password"), "{name}: {help}");
            assert!(help.contains("billing"), "{name}: the user name is shown");
            assert!(!help.contains("s3cret"), "{name}: {help}");
        }
    }

    #[test]
    fn every_setting_has_one_key_and_the_example_file_is_valid() {
        let mut known = BTreeMap::new();
        settings(&crate::cli::Cli::command(), &mut known);
        for key in [
            "database_url",
            "brokers",
            "batch_size",
            "http",
            "close_after_days",
            "kafka_security_protocol",
            "kafka_sasl_mechanism",
            "kafka_sasl_username",
            "kafka_sasl_password",
            "kafka_ssl_ca",
            "kafka_ssl_certificate",
            "kafka_ssl_key",
            "kafka_ssl_key_password",
        ] {
            assert!(
                known.contains_key(key),
                "{key} is not a setting: {:?}",
                known.keys()
            );
        }
        let example = include_str!("../../cdrflow.example.toml");
        command(example).unwrap();
    }
}
