//! Settings from a file, the environment and flags, in one place: the clap command.
//!
//! Every setting is a long flag (`--batch-size`), an environment variable
//! (`CDRFLOW_BATCH_SIZE`) and a key of the settings file (`batch_size`): the key is the
//! variable's name without `CDRFLOW_`, in lower case. The file is `cdrflow.toml` in the
//! working directory if there is one, or the file named by `--config FILE` or
//! `CDRFLOW_CONFIG`. Its values become the command's defaults, so the environment
//! overrides the file and a flag overrides both. Each value is checked with the flag's
//! own parser before anything starts, and an error names the file and the key.

use clap::{Arg, Command};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The file read when neither `--config` nor `CDRFLOW_CONFIG` names one.
pub const DEFAULT_FILE: &str = "cdrflow.toml";

/// Settings whose values are never shown (`--help` defaults, errors).
const SECRETS: [&str; 2] = ["database_url", "api_token"];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the settings file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// The settings file's values, by key, as text.
#[derive(Debug, Default)]
pub struct FileSettings {
    pub path: Option<PathBuf>,
    values: BTreeMap<String, String>,
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
        for (key, value) in table {
            let text = match value {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(f) => f.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                other => {
                    return Err(invalid(format!(
                        "`{key}` must be a string, a number or a boolean, not {}",
                        other.type_str()
                    )))
                }
            };
            values.insert(key, text);
        }
        Ok(FileSettings {
            path: Some(path.to_path_buf()),
            values,
        })
    }

    /// The command with the file's values as defaults, after checking that every key is
    /// a setting and every value passes that setting's parser.
    pub fn apply(&self, command: Command) -> Result<Command, ConfigError> {
        let Some(path) = &self.path else {
            return Ok(command);
        };
        let mut known = BTreeMap::new();
        settings(&command, &mut known);
        for (key, value) in &self.values {
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
        Ok(with_defaults(command, &self.values))
    }
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

fn with_defaults(mut command: Command, values: &BTreeMap<String, String>) -> Command {
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
        command = command.mut_subcommand(name, |s| with_defaults(s, values));
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
