//! Each option's config-file key and `GATEHOUSE_*` variable, read off its clap argument: the
//! key is the long name (`cgi-timeout`), the variable `GATEHOUSE_` and the long name in capitals
//! with `_` for `-` (`GATEHOUSE_CGI_TIMEOUT`). Nothing here lists options, so an option added
//! to the command line has its key and variable at once, checked by the same value parser.

use clap::builder::ValueParser;
use clap::error::{ContextKind, ContextValue};
use clap::{Arg, ArgAction, Command};

/// The prefix of every option's variable.
pub(crate) const ENV_PREFIX: &str = "GATEHOUSE_";

/// Variables the binary sets or reads for itself, never options: a master hands its workers
/// their slot and sockets, an old master hands the new one its listeners, a CGI program takes
/// its app from `GATEHOUSE_APP`. A new internal variable must be added here, or it is warned
/// about as unknown (and a test checks that no option's variable is one of these).
pub(crate) const INTERNAL_ENV: &[&str] = &[
    crate::worker::ENV_WORKER,
    crate::worker::ENV_LISTENERS,
    crate::worker::ENV_LOAD,
    crate::worker::ENV_CONFIG,
    crate::metrics::ENV_METRICS,
    crate::master::ENV_TITLED,
    crate::master::ENV_UPGRADE_LISTENERS,
    crate::master::ENV_UPGRADE_FROM,
    gatehouse_cgi::APP_ENV_VAR,
];

/// Options that are actions, not settings: no key, no variable.
const ACTIONS: &[&str] = &["check-config"];
/// Options that have a variable but no key: a config file cannot name another one.
const NOT_IN_FILE: &[&str] = &["config"];

/// How an option takes values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// A flag: true or false.
    Flag,
    /// One value.
    One,
    /// Repeatable (or a list): several values.
    Many,
}

/// One option, as a config file and the environment name it.
#[derive(Debug, Clone)]
pub(crate) struct Key {
    /// clap's id (`cgi_timeout`).
    pub(crate) id: String,
    /// The key: the long name, or the id of a positional argument (`app`).
    pub(crate) name: String,
    /// Other long names the option answers to (also accepted as keys).
    pub(crate) aliases: Vec<String>,
    /// The variable, `None` for a positional argument (`GATEHOUSE_APP` is the CGI program's).
    pub(crate) var: Option<String>,
    /// Whether a config file may set it.
    pub(crate) in_file: bool,
    /// A variable clap itself reads for it (`FCGI_WEB_SERVER_ADDRS`), which beats ours.
    pub(crate) clap_env: Option<String>,
    /// How it takes values.
    pub(crate) shape: Shape,
    parser: ValueParser,
    delimiter: Option<char>,
}

impl Key {
    /// Checks one value with the option's own value parser: `Err` says what is wrong, on one
    /// line, without the option's name.
    pub(crate) fn check(&self, value: &str) -> Result<(), String> {
        if self.shape == Shape::Flag {
            return match value {
                "true" | "false" => Ok(()),
                _ => Err(format!("'{value}' is not true or false")),
            };
        }
        let mut arg = Arg::new("value")
            .value_parser(self.parser.clone())
            .action(ArgAction::Append)
            .num_args(1);
        if let Some(d) = self.delimiter {
            arg = arg.value_delimiter(d);
        }
        Command::new("gatehouse")
            .no_binary_name(true)
            .arg(arg)
            .try_get_matches_from(["--", value])
            .map(drop)
            .map_err(|e| describe(&e, value))
    }

    /// How `--check-config` and the messages name it: `--cgi-timeout`, or `APP`.
    pub(crate) fn flag(&self) -> String {
        match self.var {
            Some(_) => format!("--{}", self.name),
            None => self.name.to_ascii_uppercase(),
        }
    }
}

/// A value parser's complaint, on one line.
fn describe(e: &clap::Error, value: &str) -> String {
    use std::error::Error as _;

    if let Some(cause) = e.source() {
        let cause = cause.to_string();
        // Some parsers name the value ("'5 parsecs': unknown unit"), some do not ("invalid
        // digit found in string").
        return if cause.contains(value) {
            cause
        } else {
            format!("invalid value '{value}': {cause}")
        };
    }
    let mut msg = format!("invalid value '{value}'");
    if let Some(ContextValue::Strings(valid)) = e.get(ContextKind::ValidValue) {
        msg.push_str(&format!(" (possible values: {})", valid.join(", ")));
    }
    msg
}

/// The variable of the option with long name `long`.
pub(crate) fn var_name(long: &str) -> String {
    format!(
        "{ENV_PREFIX}{}",
        long.replace('-', "_").to_ascii_uppercase()
    )
}

/// Every option of `cmd` with a key or a variable, in `--help` order.
pub(crate) fn keys(cmd: &Command) -> Vec<Key> {
    let mut built = cmd.clone();
    built.build();
    built
        .get_arguments()
        .filter(|a| {
            !matches!(
                a.get_action(),
                ArgAction::Help | ArgAction::HelpShort | ArgAction::HelpLong | ArgAction::Version
            )
        })
        .filter_map(|a| {
            let name = a
                .get_long()
                .map_or_else(|| a.get_id().to_string(), str::to_owned);
            if ACTIONS.contains(&name.as_str()) {
                return None;
            }
            let shape = match a.get_action() {
                ArgAction::SetTrue | ArgAction::SetFalse => Shape::Flag,
                ArgAction::Append => Shape::Many,
                _ => Shape::One,
            };
            Some(Key {
                id: a.get_id().to_string(),
                var: a.get_long().map(var_name),
                in_file: !NOT_IN_FILE.contains(&name.as_str()),
                clap_env: a.get_env().map(|e| e.to_string_lossy().into_owned()),
                aliases: a
                    .get_all_aliases()
                    .unwrap_or_default()
                    .into_iter()
                    .map(str::to_owned)
                    .collect(),
                name,
                shape,
                parser: a.get_value_parser().clone(),
                delimiter: a.get_value_delimiter(),
            })
        })
        .collect()
}
