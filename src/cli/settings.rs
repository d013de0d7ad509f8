//! Where each option's value comes from, and the merge: command line > `GATEHOUSE_*` variable >
//! `--config` file > default.
//!
//! ```text
//!  argv ──► clap (plain) ──► --config PATH ─┐        GATEHOUSE_* ──► env::parse ──┐
//!                            (or GATEHOUSE_CONFIG)   PATH ──► file::parse ─────────┤
//!                                                                                 ▼
//!  argv ──► clap, each argument's default = its variable's values, else the file's ──► Cli
//! ```
//!
//! The variables' and the file's values become the arguments' defaults, so clap's own
//! precedence (a value on the command line beats a default) does the merge, and every value
//! goes through the option's own parser. A repeatable option given on the command line
//! replaces the file's list, it does not add to it. clap ignores defaults when it checks
//! conflicts, so [`check_conflicts`] checks them over every source.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{ArgMatches, Command};

use super::keys::{self, Key, Shape};
use super::{env, file};
use crate::worker::{ENV_CONFIG, ENV_WORKER};

/// Where an option's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The command line.
    Cli,
    /// This environment variable.
    Env(String),
    /// This line of the config file.
    File {
        /// The file, as `--config` names it.
        path: PathBuf,
        /// 1-based.
        line: usize,
    },
    /// The option's default (or it is not set).
    Default,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cli => f.write_str("cli"),
            Self::Env(name) => write!(f, "env {name}"),
            Self::File { path, line } => write!(f, "file {}:{line}", path.display()),
            Self::Default => f.write_str("default"),
        }
    }
}

/// The values one source gives an option (raw, as on the command line).
#[derive(Debug, Clone)]
pub(crate) struct Given {
    pub(crate) values: Vec<String>,
    pub(crate) source: Source,
}

/// What one source (the variables, the file) gives, by clap id.
pub(crate) type Layer = BTreeMap<String, Given>;

/// One option's effective value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// clap's id.
    id: String,
    /// The key (long name).
    pub key: String,
    /// The raw values (empty: not set).
    pub values: Vec<String>,
    /// Where they come from.
    pub source: Source,
    shape: Shape,
    flag: String,
}

impl Setting {
    /// Whether the option is given at all (not its default, not a false flag).
    pub(crate) fn is_used(&self) -> bool {
        self.source != Source::Default
            && !self.values.is_empty()
            && !(self.shape == Shape::Flag && self.values == ["false"])
    }

    /// The value as TOML (`30`, `"30s"`, `true`, `["a", "b"]`); `None` when not set.
    fn toml(&self) -> Option<String> {
        let one = |v: &String| match v.parse::<i64>() {
            Ok(i) if i.to_string() == *v => v.clone(),
            _ => toml::Value::String(v.clone()).to_string(),
        };
        match self.shape {
            Shape::Flag => self.values.first().cloned(),
            Shape::One => self.values.first().map(one),
            Shape::Many => Some(format!(
                "[{}]",
                self.values.iter().map(one).collect::<Vec<_>>().join(", ")
            )),
        }
    }
}

/// Every option's effective value and its source, the config file read, and the unknown
/// `GATEHOUSE_*` variables. Kept in [`super::Cli`] for `--check-config` and SIGHUP.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    entries: Vec<Setting>,
    file: Option<(PathBuf, String)>,
    unknown_env: Vec<String>,
    embedded: bool,
}

impl Settings {
    /// Each option, in `--help` order.
    pub fn iter(&self) -> impl Iterator<Item = &Setting> {
        self.entries.iter()
    }

    /// The option with this key.
    pub fn get(&self, key: &str) -> Option<&Setting> {
        self.entries.iter().find(|s| s.key == key)
    }

    pub(crate) fn by_id(&self, id: &str) -> Option<&Setting> {
        self.entries.iter().find(|s| s.id == id)
    }

    /// The config file, when one was read.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_ref().map(|(p, _)| p.as_path())
    }

    /// The text the config file held when it was read (what a master hands its workers).
    pub fn file_text(&self) -> Option<&str> {
        self.file.as_ref().map(|(_, t)| t.as_str())
    }

    /// `GATEHOUSE_*` variables that are neither an option's nor the binary's own.
    pub fn unknown_env(&self) -> &[String] {
        &self.unknown_env
    }

    /// Whether these are the options of a program embedding gatehouse.
    pub(crate) fn embedded(&self) -> bool {
        self.embedded
    }

    pub(crate) fn set_embedded(&mut self) {
        self.embedded = true;
    }

    /// The keys whose values differ from `other`'s.
    pub fn changed<'a>(&'a self, other: &Self) -> Vec<&'a str> {
        self.entries
            .iter()
            .filter(|s| other.get(&s.key).map(|o| &o.values) != Some(&s.values))
            .map(|s| s.key.as_str())
            .collect()
    }

    /// Writes `key = value  # source` for every option (as TOML: the output can be a config
    /// file), `# key: not set  # default` for one without a value.
    pub fn write_effective(&self, out: &mut dyn io::Write) -> io::Result<()> {
        match self.file() {
            Some(path) => writeln!(out, "# effective settings; config file {}", path.display())?,
            None => writeln!(out, "# effective settings; no config file")?,
        }
        writeln!(
            out,
            "# key = value  # from: cli, env VARIABLE, file FILE:LINE or default"
        )?;
        let lines: Vec<(String, &Source)> = self
            .entries
            .iter()
            .map(|s| match s.toml() {
                Some(v) => (format!("{} = {v}", s.key), &s.source),
                None => (format!("# {}: not set", s.key), &s.source),
            })
            .collect();
        let width = lines
            .iter()
            .map(|(l, _)| l.len())
            .max()
            .unwrap_or(0)
            .min(48);
        for (line, source) in lines {
            writeln!(out, "{line:width$}  # {source}")?;
        }
        Ok(())
    }
}

/// What a parse reads: the arguments, the environment, and how to read a file.
pub(crate) struct Inputs<'a> {
    /// The arguments, program name first.
    pub(crate) args: Vec<OsString>,
    /// The environment.
    pub(crate) vars: Vec<(OsString, OsString)>,
    /// Reads the config file.
    pub(crate) read: &'a dyn Fn(&Path) -> io::Result<String>,
}

/// Why a parse failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// clap's error (including `--help` and `--version`, which are not errors).
    Clap(clap::Error),
    /// A variable, the config file, or options that conflict across sources.
    Usage(String),
}

impl Failure {
    /// The message on one line, without `error: `.
    pub(crate) fn line(&self) -> String {
        match self {
            Self::Clap(e) => {
                let text = e.to_string();
                let first = text.lines().next().unwrap_or("bad command line");
                first.strip_prefix("error: ").unwrap_or(first).to_owned()
            }
            Self::Usage(msg) => msg.clone(),
        }
    }
}

/// Parses `inputs` with `cmd`: the merged matches, and where each value came from.
pub(crate) fn parse(cmd: Command, inputs: &Inputs<'_>) -> Result<(ArgMatches, Settings), Failure> {
    // The command line alone first: --help, --version and its own errors come before any
    // file is read, and it may name the file.
    let plain = cmd
        .clone()
        .try_get_matches_from(&inputs.args)
        .map_err(Failure::Clap)?;
    let keys = keys::keys(&cmd);
    let has = |name: &str| inputs.vars.iter().any(|(n, _)| n == name);
    let worker = has(ENV_WORKER);
    let (from_env, mut unknown_env) = env::parse(&inputs.vars, &keys).map_err(Failure::Usage)?;
    if worker || has(crate::master::ENV_TITLED) {
        // The master warned about them already (before it re-executed itself under its title).
        unknown_env.clear();
    }
    let path = match plain.value_source("config") {
        Some(ValueSource::CommandLine) => plain.get_one::<PathBuf>("config").cloned(),
        _ => from_env
            .get("config")
            .and_then(|g| g.values.first())
            .map(PathBuf::from),
    };
    let file = match path {
        None => None,
        Some(path) => {
            // A worker reads the file as its master validated it (see crate::worker::ENV_CONFIG).
            let snapshot = inputs
                .vars
                .iter()
                .find(|(n, _)| worker && n == ENV_CONFIG)
                .and_then(|(_, v)| v.to_str().map(str::to_owned));
            let text = match snapshot {
                Some(text) => text,
                None => (inputs.read)(&path).map_err(|e| {
                    Failure::Usage(format!(
                        "{}: cannot read the config file: {e}",
                        path.display()
                    ))
                })?,
            };
            Some((path, text))
        }
    };
    let from_file = match &file {
        Some((path, text)) => file::parse(path, text, &keys).map_err(Failure::Usage)?,
        None => Layer::new(),
    };
    let given = |key: &Key| from_env.get(&key.id).or_else(|| from_file.get(&key.id));
    let mut cmd = cmd;
    for key in &keys {
        if let Some(g) = given(key) {
            let values = g.values.clone();
            cmd = cmd.mut_arg(&key.id, |a| a.default_values(values));
        }
    }
    let matches = cmd
        .clone()
        .try_get_matches_from(&inputs.args)
        .map_err(Failure::Clap)?;
    let entries = keys
        .iter()
        .map(|key| {
            let source = match matches.value_source(&key.id) {
                Some(ValueSource::CommandLine) => Source::Cli,
                Some(ValueSource::EnvVariable) => {
                    Source::Env(key.clap_env.clone().unwrap_or_default())
                }
                _ => given(key).map_or(Source::Default, |g| g.source.clone()),
            };
            let values = matches
                .get_raw(&key.id)
                .map(|raw| raw.map(|v| v.to_string_lossy().into_owned()).collect())
                .unwrap_or_default();
            Setting {
                id: key.id.clone(),
                key: key.name.clone(),
                values,
                source,
                shape: key.shape,
                flag: key.flag(),
            }
        })
        .collect();
    let settings = Settings {
        entries,
        file,
        unknown_env,
        embedded: false,
    };
    check_conflicts(&cmd, &settings)?;
    Ok((matches, settings))
}

/// Options that may not be used together, when one of them comes from a variable or the file
/// (clap already refuses two on the command line).
fn check_conflicts(cmd: &Command, settings: &Settings) -> Result<(), Failure> {
    let mut built = cmd.clone();
    built.build();
    for arg in built.get_arguments() {
        let Some(a) = settings
            .by_id(arg.get_id().as_str())
            .filter(|s| s.is_used())
        else {
            continue;
        };
        for other in built.get_arg_conflicts_with(arg) {
            let Some(b) = settings
                .by_id(other.get_id().as_str())
                .filter(|s| s.is_used())
            else {
                continue;
            };
            return Err(Failure::Usage(format!(
                "{} ({}) cannot be used with {} ({})",
                a.flag, a.source, b.flag, b.source
            )));
        }
    }
    Ok(())
}
