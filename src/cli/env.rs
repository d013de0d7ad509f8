//! `GATEHOUSE_<OPTION>` variables, for containers (as Granian's `GRANIAN_*`):
//! `GATEHOUSE_CGI_TIMEOUT=30s`, `GATEHOUSE_WORKERS=4`. A flag takes `true`/`false` (also
//! `1`/`0`, `yes`/`no`, `on`/`off`); a repeatable option takes its values separated by
//! whitespace (`GATEHOUSE_FASTCGI="unix:/run/a.sock 127.0.0.1:9000"`, as click splits
//! multi-value variables); an empty variable counts as unset. The binary's own variables
//! ([`INTERNAL_ENV`]) are left alone; any other `GATEHOUSE_*` variable is unknown.

use std::ffi::OsString;

use super::keys::{Key, Shape, ENV_PREFIX, INTERNAL_ENV};
use super::settings::{Given, Layer, Source};

/// The values the `GATEHOUSE_*` variables of `vars` give, by clap id, each checked by its
/// option's parser; and the unknown `GATEHOUSE_*` names. `Err` is the one-line message.
pub(crate) fn parse<'v>(
    vars: impl IntoIterator<Item = &'v (OsString, OsString)>,
    keys: &[Key],
) -> Result<(Layer, Vec<String>), String> {
    let mut layer = Layer::new();
    let mut unknown = Vec::new();
    for (name, value) in vars {
        let Some(name) = name.to_str() else { continue };
        if !name.starts_with(ENV_PREFIX) || INTERNAL_ENV.contains(&name) {
            continue;
        }
        let Some(key) = keys.iter().find(|k| k.var.as_deref() == Some(name)) else {
            unknown.push(name.to_owned());
            continue;
        };
        let value = value
            .to_str()
            .ok_or_else(|| format!("{name}: the value is not UTF-8"))?;
        let values: Vec<String> = match key.shape {
            _ if value.trim().is_empty() => continue,
            Shape::Flag => vec![boolish(value)
                .ok_or_else(|| format!("{name}: '{value}' is not true or false"))?
                .to_string()],
            Shape::One => vec![value.to_owned()],
            Shape::Many => value.split_whitespace().map(str::to_owned).collect(),
        };
        for v in &values {
            key.check(v).map_err(|msg| format!("{name}: {msg}"))?;
        }
        let source = Source::Env(name.to_owned());
        layer.insert(key.id.clone(), Given { values, source });
    }
    unknown.sort();
    Ok((layer, unknown))
}

/// `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`, in any case.
fn boolish(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}
