//! How every ZeroLagHub configuration is read: a TOML document overlaid with environment
//! variables, and the serde helpers its fields share (durations, lenient strings, secrets).
//!
//! An override is `<PREFIX><PATH>`: the key path in capitals with `__` between levels
//! (`ZLH_AGENT_GAME__STOP_TIMEOUT=45s`, `ZLH_AUTH__ALLOW_REGISTRATION=false`). A value that
//! reads as a TOML value (a number, a boolean, an array) is taken as one; anything else is a
//! string. Only paths whose first key is a known top-level key are applied, so unrelated
//! variables that share the prefix (`ZLH_LOG`, or the agent's `ZLH_AGENT_*` seen by the control
//! plane) are ignored. Keys under free-form maps (such as the game's `env`) keep their case.
//! The environment is a parameter, so tests never touch the process env.

use serde::{Deserialize, Deserializer};

use crate::Secret;

/// Where overrides come from and which keys they may touch.
#[derive(Debug, Clone, Copy)]
pub struct EnvOverrides<'a> {
    /// Variable prefix, such as `ZLH_AGENT_`.
    pub prefix: &'a str,
    /// Top-level keys an override may start with.
    pub known_keys: &'a [&'a str],
    /// Key paths of maps whose keys are free-form and keep their case (`["game", "env"]`).
    pub free_form_maps: &'a [&'a [&'a str]],
}

/// Parses `text` as TOML and applies the overrides found in `env`.
pub fn load_toml(
    text: &str,
    overrides: EnvOverrides<'_>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<toml::Table, String> {
    let mut table: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
    for (key, value) in env {
        let Some(path) = key.strip_prefix(overrides.prefix) else { continue };
        let raw: Vec<&str> = path.split("__").collect();
        let mut keys: Vec<String> = raw.iter().map(|k| k.to_ascii_lowercase()).collect();
        if !keys.first().is_some_and(|first| overrides.known_keys.contains(&first.as_str())) {
            continue;
        }
        for map in overrides.free_form_maps {
            if keys.len() == map.len() + 1 && keys[..map.len()].iter().zip(map.iter()).all(|(a, b)| a == b) {
                keys[map.len()] = raw[map.len()].to_owned();
            }
        }
        insert(&mut table, &keys, parse_value(&value)).map_err(|e| format!("{key}: {e}"))?;
    }
    Ok(table)
}

fn insert(table: &mut toml::Table, keys: &[String], value: toml::Value) -> Result<(), String> {
    let Some((last, parents)) = keys.split_last() else { return Ok(()) };
    let mut current = table;
    for key in parents {
        let entry = current.entry(key.clone()).or_insert_with(|| toml::Table::new().into());
        current = entry.as_table_mut().ok_or_else(|| format!("{key} is not a table"))?;
    }
    current.insert(last.clone(), value);
    Ok(())
}

fn parse_value(value: &str) -> toml::Value {
    #[derive(Deserialize)]
    struct Wrapper {
        v: toml::Value,
    }
    match toml::from_str::<Wrapper>(&format!("v = {value}")) {
        Ok(wrapper) => wrapper.v,
        Err(_) => toml::Value::String(value.to_owned()),
    }
}

/// A string, or a number or boolean written where a string belongs (an override such as
/// `ZLH_AGENT_GAME__ENV__PORT=25565` reads as a number).
fn scalar_to_string(value: toml::Value) -> Option<String> {
    match value {
        toml::Value::String(s) => Some(s),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Deserializes a [`Secret`] that may have been read as a number.
pub fn lenient_secret<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Secret, D::Error> {
    let value = toml::Value::deserialize(deserializer)?;
    scalar_to_string(value)
        .map(Secret::new)
        .ok_or_else(|| serde::de::Error::custom("a secret must be a string"))
}

/// Deserializes an optional [`Secret`] that may have been read as a number.
pub fn lenient_optional_secret<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Secret>, D::Error> {
    lenient_secret(deserializer).map(Some)
}

/// Deserializes a string-to-string map whose values may have been read as numbers.
pub fn lenient_string_map<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<std::collections::BTreeMap<String, String>, D::Error> {
    let raw = std::collections::BTreeMap::<String, toml::Value>::deserialize(deserializer)?;
    raw.into_iter()
        .map(|(key, value)| match scalar_to_string(value) {
            Some(s) => Ok((key, s)),
            None => Err(serde::de::Error::custom(format!("{key} must be a string"))),
        })
        .collect()
}

/// Durations written as `"30s"`, `"250ms"`, `"15m"`: `#[serde(with = "duration")]`.
pub mod duration {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    /// Serializes one duration in the same form (`"1m 30s"`).
    pub fn serialize<S: Serializer>(value: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*value).to_string())
    }

    /// Deserializes one duration.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        parse(&text).map_err(serde::de::Error::custom)
    }

    /// Parses one duration, with a message that shows the expected form.
    pub fn parse(text: &str) -> Result<Duration, String> {
        humantime::parse_duration(text)
            .map_err(|e| format!("{text:?} is not a duration like \"30s\" or \"250ms\": {e}"))
    }
}

/// Lists of durations: `#[serde(with = "duration_list")]`.
pub mod duration_list {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    /// Deserializes a list of durations.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Duration>, D::Error> {
        let texts = Vec::<String>::deserialize(d)?;
        texts.iter().map(|t| super::duration::parse(t).map_err(serde::de::Error::custom)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OVERRIDES: EnvOverrides<'static> = EnvOverrides {
        prefix: "ZLH_AGENT_",
        known_keys: &["listen", "game"],
        free_form_maps: &[&["game", "env"]],
    };

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn overrides_are_typed_scoped_and_keep_free_form_case() {
        let table = load_toml(
            "[game]\nargv = [\"x\"]\n",
            OVERRIDES,
            env(&[
                ("ZLH_AGENT_LISTEN", "0.0.0.0:1"),
                ("ZLH_AGENT_GAME__ARGV", r#"["a", "b"]"#),
                ("ZLH_AGENT_GAME__ENV__JAVA_OPTS", "-Xmx2G"),
                ("ZLH_AGENT_GAME__RETRIES", "3"),
                ("ZLH_AGENT_UNKNOWN", "ignored"),
                ("OTHER", "ignored"),
            ]),
        )
        .expect("valid");
        assert_eq!(table["listen"].as_str(), Some("0.0.0.0:1"));
        assert_eq!(table["game"]["argv"].as_array().map(Vec::len), Some(2));
        assert_eq!(table["game"]["env"]["JAVA_OPTS"].as_str(), Some("-Xmx2G"));
        assert_eq!(table["game"]["retries"].as_integer(), Some(3));
        assert!(!table.contains_key("unknown"));
    }

    #[test]
    fn an_override_through_a_scalar_is_an_error() {
        let err = load_toml("listen = \"x\"\n", OVERRIDES, env(&[("ZLH_AGENT_LISTEN__PORT", "1")]));
        assert!(err.expect_err("error").contains("not a table"));
    }
}
