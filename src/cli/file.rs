//! The `--config FILE.toml` file: one top-level key per option (the option's long name), read
//! with the `toml` crate. Every error is one line naming the file, the line and the key.
//!
//! ```toml
//! workers = 2                      # an option that takes a value: a string or an integer
//! cgi-timeout = "30s"
//! scgi-strict-duplicates = true    # a flag: true or false
//! fastcgi = ["unix:/run/a.sock"]   # a repeatable option: an array (or a single value)
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use toml::{Spanned, Value};

use super::keys::{Key, Shape};
use super::settings::{Given, Layer, Source};

/// The values `text` (the contents of `path`) gives, by clap id, each checked by its option's
/// parser. `Err` is the one-line message.
pub(crate) fn parse(path: &Path, text: &str, keys: &[Key]) -> Result<Layer, String> {
    let at = |offset: usize| format!("{}:{}", path.display(), line_of(text, offset));
    let table: BTreeMap<Spanned<String>, Spanned<Value>> = toml::from_str(text).map_err(|e| {
        let offset = e.span().map_or(0, |s| s.start);
        let key = key_on_line(text, offset)
            .map(|k| format!("key '{k}': "))
            .unwrap_or_default();
        format!("{}: {key}invalid TOML: {}", at(offset), e.message())
    })?;
    // In the file's order, so the first error reported is the first in the file.
    let mut entries: Vec<_> = table.into_iter().collect();
    entries.sort_by_key(|(name, _)| name.span().start);
    let mut layer = Layer::new();
    for (name, value) in entries {
        let where_ = at(name.span().start);
        let key = find(keys, name.get_ref()).ok_or_else(|| {
            let why = if keys.iter().any(|k| k.name == *name.get_ref()) {
                "cannot be set in a config file"
            } else {
                "is not an option"
            };
            let hint = suggest(keys, name.get_ref())
                .map(|k| format!(" (did you mean '{k}'?)"))
                .unwrap_or_default();
            format!("{where_}: unknown key '{}': it {why}{hint}", name.get_ref())
        })?;
        let bad = |msg: String| format!("{where_}: key '{}': {msg}", name.get_ref());
        let values = values(key, value.get_ref()).map_err(bad)?;
        for v in &values {
            key.check(v).map_err(bad)?;
        }
        let line = line_of(text, name.span().start);
        let source = Source::File {
            path: path.to_owned(),
            line,
        };
        layer.insert(key.id.clone(), Given { values, source });
    }
    Ok(layer)
}

/// The option `name` is the key (or an alias) of, if a file may set it.
fn find<'k>(keys: &'k [Key], name: &str) -> Option<&'k Key> {
    keys.iter()
        .filter(|k| k.in_file)
        .find(|k| k.name == name || k.aliases.iter().any(|a| a == name))
}

/// A TOML value as the option's raw values (what the command line would have said).
fn values(key: &Key, value: &Value) -> Result<Vec<String>, String> {
    let scalar = |v: &Value| match v {
        Value::String(s) => Ok(s.clone()),
        Value::Integer(i) => Ok(i.to_string()),
        other => Err(format!(
            "expected a string or an integer, found {}",
            describe(other)
        )),
    };
    match (key.shape, value) {
        (Shape::Flag, Value::Boolean(b)) => Ok(vec![b.to_string()]),
        (Shape::Flag, other) => Err(format!(
            "a flag takes true or false, found {}",
            describe(other)
        )),
        (Shape::Many, Value::Array(items)) => items.iter().map(scalar).collect(),
        (Shape::One, Value::Array(_)) => {
            Err("takes one value, not an array (it is not repeatable)".to_owned())
        }
        (_, Value::Table(_)) => Err(
            "a table is not an option: the file has one top-level key per option (see --help)"
                .to_owned(),
        ),
        (_, v) => scalar(v).map(|s| vec![s]),
    }
}

fn describe(v: &Value) -> String {
    match v {
        Value::String(s) => format!("the string {s:?}"),
        Value::Integer(i) => format!("the integer {i}"),
        Value::Float(f) => format!("the float {f}"),
        Value::Boolean(b) => format!("{b}"),
        Value::Datetime(d) => format!("the date {d}"),
        Value::Array(_) => "an array".to_owned(),
        Value::Table(_) => "a table".to_owned(),
    }
}

/// The 1-based line of byte `offset`.
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The bare key at the start of the line holding `offset`, when the line reads `key = ...`.
fn key_on_line(text: &str, offset: usize) -> Option<&str> {
    let end = offset.min(text.len());
    let start = text[..end].rfind('\n').map_or(0, |i| i + 1);
    let line = text[start..].lines().next()?;
    let (key, _) = line.split_once('=')?;
    let key = key.trim();
    let bare = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    bare.then_some(key)
}

/// The key closest to a misspelt `name` (at most 2 edits away), for "did you mean".
fn suggest<'k>(keys: &'k [Key], name: &str) -> Option<&'k str> {
    keys.iter()
        .filter(|k| k.in_file)
        .map(|k| (edit_distance(&k.name, name), k.name.as_str()))
        .filter(|&(d, _)| d <= 2)
        .min_by_key(|&(d, _)| d)
        .map(|(_, k)| k)
}

/// Levenshtein distance, by bytes.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_keys_and_distances() {
        let text = "a = 1\n\nbad-key = oops\n";
        assert_eq!(line_of(text, 0), 1);
        assert_eq!(line_of(text, 7), 3);
        assert_eq!(key_on_line(text, 12), Some("bad-key"));
        assert_eq!(key_on_line("[table\n", 3), None);
        assert_eq!(edit_distance("cgi-timeout", "cgi-timout"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("workers", "workers"), 0);
    }
}
