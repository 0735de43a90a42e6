//! Config files edited before every start, as an egg's `config.files` says: each `find` key
//! is set to its value, with `{{…}}` placeholders filled from the start's environment.
//!
//! The server's directory belongs to its owner, so every file is read and written through
//! the directory handle (no symlink leads out) and replaced by a rename: a start that fails
//! halfway leaves each file whole. Unreadable structured files refuse the start with the
//! parser's message rather than being overwritten.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;

use cap_std::fs::{Dir, OpenOptions};
use serde_json::Value;
use zlh_proto::agent_config::{ConfigEdit, ConfigParser};

/// The largest config file edited.
const MAX_FILE: u64 = 4 << 20;

/// Fills `{{server.build.default.port}}`, `{{server.build.env.X}}`, `{{env.X}}` and the
/// like from `env`; a placeholder it does not know stays as written.
pub fn render(text: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            rest = &rest[open..];
            break;
        };
        let name = after[..close].trim();
        let key = match name {
            "server.build.default.port" | "server.allocations.default.port" => Some("SERVER_PORT"),
            "server.build.default.ip" | "server.allocations.default.ip" => Some("SERVER_IP"),
            "server.build.memory" => Some("SERVER_MEMORY"),
            _ => name.strip_prefix("server.build.env.").or_else(|| name.strip_prefix("env.")).or(Some(name)),
        };
        match key.and_then(|key| env.get(key)) {
            Some(value) => out.push_str(value),
            None => out.push_str(&rest[open..open + 2 + close + 2]),
        }
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    out
}

/// Applies every edit in the directory `root`, or says which file could not be edited.
pub fn apply(root: &Path, edits: &[ConfigEdit], env: &BTreeMap<String, String>) -> Result<(), String> {
    if edits.is_empty() {
        return Ok(());
    }
    let dir = Dir::open_ambient_dir(root, cap_std::ambient_authority())
        .map_err(|e| format!("the server directory cannot be opened: {e}"))?;
    for edit in edits {
        let find: Vec<(String, String)> =
            edit.find.iter().map(|(key, value)| (key.clone(), render(value, env))).collect();
        edit_file(&dir, edit, &find).map_err(|e| format!("config file {}: {e}", edit.file))?;
    }
    Ok(())
}

fn edit_file(dir: &Dir, edit: &ConfigEdit, find: &[(String, String)]) -> Result<(), String> {
    let path = crate::files::clean_new(&edit.file).map_err(|e| e.to_string())?;
    let old = match crate::files::open_regular(dir, &path) {
        Ok(file) => {
            let mut text = String::new();
            file.into_std()
                .take(MAX_FILE + 1)
                .read_to_string(&mut text)
                .map_err(|e| format!("cannot be read as text: {e}"))?;
            if text.len() as u64 > MAX_FILE {
                return Err("larger than 4 MiB".into());
            }
            Some(text)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(crate::files::FileError::from(e).to_string()),
    };
    let text = old.as_deref().unwrap_or_default();
    let new = match edit.parser {
        ConfigParser::File => {
            Ok(lines(text, find, |line, key| line.starts_with(key), |_, value| value.to_owned()))
        }
        ConfigParser::Properties => Ok(lines(
            text,
            find,
            |line, key| line.split_once(['=', ':']).is_some_and(|(k, _)| k.trim() == key),
            |key, value| format!("{key}={value}"),
        )),
        ConfigParser::Ini => Ok(ini(text, find)),
        ConfigParser::Json => structured(text, find, false),
        ConfigParser::Yaml => structured(text, find, true),
        ConfigParser::Xml if old.is_none() => return Ok(()),
        ConfigParser::Xml => xml(text, find),
    }?;
    if old.as_deref() == Some(new.as_str()) {
        return Ok(());
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        dir.create_dir_all(parent).map_err(|e| e.to_string())?;
    }
    let temporary = path.with_file_name(format!(
        ".zlh-config-{}",
        path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()
    ));
    let mut file = dir
        .open_with(&temporary, OpenOptions::new().write(true).create(true).truncate(true))
        .map_err(|e| e.to_string())?;
    let written = file.write_all(new.as_bytes()).and_then(|()| file.sync_all());
    drop(file);
    match written.and_then(|()| dir.rename(&temporary, dir, &path)) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = dir.remove_file(&temporary);
            Err(e.to_string())
        }
    }
}

/// Line formats: each line a key matches is replaced; keys no line matched are appended.
fn lines(
    text: &str,
    find: &[(String, String)],
    matches: impl Fn(&str, &str) -> bool,
    line_for: impl Fn(&str, &str) -> String,
) -> String {
    let mut seen = vec![false; find.len()];
    let mut out: Vec<String> = text
        .lines()
        .map(|line| {
            let trimmed = line.trim_start();
            match find.iter().position(|(key, _)| !trimmed.starts_with('#') && matches(trimmed, key)) {
                Some(at) => {
                    seen[at] = true;
                    line_for(&find[at].0, &find[at].1)
                }
                None => line.to_owned(),
            }
        })
        .collect();
    out.extend(find.iter().zip(seen).filter(|(_, seen)| !seen).map(|((key, value), _)| line_for(key, value)));
    out.join("\n") + "\n"
}

/// INI: `section.key = value`, sections made when missing.
fn ini(text: &str, find: &[(String, String)]) -> String {
    let mut out: Vec<String> = text.lines().map(str::to_owned).collect();
    for (path, value) in find {
        let (section, key) = path.rsplit_once('.').unwrap_or(("", path));
        let mut current = String::new();
        let mut section_end = if section.is_empty() { Some(0) } else { None };
        let mut done = false;
        for (at, line) in out.iter_mut().enumerate() {
            let trimmed = line.trim();
            if let Some(name) = trimmed.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
                current = name.trim().to_owned();
                continue;
            }
            if current == section {
                section_end = Some(at + 1);
                if trimmed.split_once('=').is_some_and(|(k, _)| k.trim() == key) {
                    *line = format!("{key}={value}");
                    done = true;
                    break;
                }
            }
        }
        if done {
            continue;
        }
        match section_end {
            Some(at) if !section.is_empty() || out.iter().take(at).all(|l| !l.trim().starts_with('[')) => {
                out.insert(at, format!("{key}={value}"));
            }
            _ if section.is_empty() => out.insert(0, format!("{key}={value}")),
            _ => out.extend([format!("[{section}]"), format!("{key}={value}")]),
        }
    }
    out.join("\n") + "\n"
}

/// A value as the structured formats store it: numbers and booleans as themselves.
fn typed(value: &str) -> Value {
    match value {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => value
            .parse::<i64>()
            .map(Value::from)
            .ok()
            .or_else(|| value.parse::<f64>().ok().filter(|f| f.is_finite()).map(Value::from))
            .unwrap_or_else(|| Value::String(value.to_owned())),
    }
}

/// Sets `path` (dotted, `*` for every key or element) in `value`, making objects on the way.
fn set(value: &mut Value, path: &[&str], new: &Value) {
    let Some((first, rest)) = path.split_first() else {
        *value = new.clone();
        return;
    };
    if *first == "*" {
        match value {
            Value::Object(map) => map.values_mut().for_each(|v| set(v, rest, new)),
            Value::Array(items) => items.iter_mut().for_each(|v| set(v, rest, new)),
            _ => {}
        }
        return;
    }
    if let (Value::Array(items), Ok(index)) = (&mut *value, first.parse::<usize>()) {
        if let Some(item) = items.get_mut(index) {
            set(item, rest, new);
        }
        return;
    }
    if !value.is_object() {
        *value = Value::Object(serde_json::Map::new());
    }
    if let Value::Object(map) = value {
        set(map.entry((*first).to_owned()).or_insert(Value::Null), rest, new);
    }
}

/// JSON or YAML: read, set every path, written back (comments in YAML are not kept).
fn structured(text: &str, find: &[(String, String)], yaml: bool) -> Result<String, String> {
    let mut document: Value = match (text.trim().is_empty(), yaml) {
        (true, _) => Value::Object(serde_json::Map::new()),
        (false, false) => serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?,
        (false, true) => serde_saphyr::from_str(text).map_err(|e| format!("not valid YAML: {e}"))?,
    };
    for (path, value) in find {
        set(&mut document, &path.split('.').collect::<Vec<_>>(), &typed(value));
    }
    if yaml {
        serde_saphyr::to_string(&document).map_err(|e| e.to_string())
    } else {
        serde_json::to_string_pretty(&document).map(|text| text + "\n").map_err(|e| e.to_string())
    }
}

/// XML: the text of every element at a dotted path is replaced (elements are not made).
fn xml(text: &str, find: &[(String, String)]) -> Result<String, String> {
    use quick_xml::events::{BytesEnd, BytesText, Event};
    let bad = |e: &dyn std::fmt::Display| format!("not valid XML: {e}");
    let mut reader = quick_xml::Reader::from_str(text);
    let mut writer = quick_xml::Writer::new(Vec::new());
    let mut path: Vec<String> = Vec::new();
    // While set, the element at this depth had its content replaced: skip until its end.
    let mut replaced_at: Option<usize> = None;
    let value_at = |path: &[String]| {
        find.iter().find(|(key, _)| {
            let key: Vec<&str> = key.split('.').collect();
            key.len() == path.len() && key.iter().zip(path).all(|(k, p)| *k == "*" || k == p)
        })
    };
    loop {
        let event = reader.read_event().map_err(|e| bad(&e))?;
        let write = |writer: &mut quick_xml::Writer<Vec<u8>>, event: Event<'_>| {
            writer.write_event(event).map_err(|e| e.to_string())
        };
        match event {
            Event::Eof => break,
            Event::Start(start) => {
                path.push(String::from_utf8_lossy(start.name().as_ref()).into_owned());
                if replaced_at.is_some() {
                    continue;
                }
                write(&mut writer, Event::Start(start))?;
                if let Some((_, value)) = value_at(&path) {
                    write(&mut writer, Event::Text(BytesText::new(value)))?;
                    replaced_at = Some(path.len());
                }
            }
            Event::Empty(start) if replaced_at.is_none() => {
                path.push(String::from_utf8_lossy(start.name().as_ref()).into_owned());
                match value_at(&path) {
                    Some((_, value)) => {
                        let name = path.last().cloned().unwrap_or_default();
                        write(&mut writer, Event::Start(start))?;
                        write(&mut writer, Event::Text(BytesText::new(value)))?;
                        write(&mut writer, Event::End(BytesEnd::new(name)))?;
                    }
                    None => write(&mut writer, Event::Empty(start))?,
                }
                path.pop();
            }
            Event::End(end) => {
                if replaced_at == Some(path.len()) {
                    replaced_at = None;
                }
                path.pop();
                if replaced_at.is_none() {
                    write(&mut writer, Event::End(end))?;
                }
            }
            other if replaced_at.is_none() => write(&mut writer, other)?,
            _ => {}
        }
    }
    String::from_utf8(writer.into_inner()).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> BTreeMap<String, String> {
        [("SERVER_PORT", "30001"), ("MOTD", "Hello"), ("MAX_USERS", "7")]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .into()
    }

    fn edit(parser: ConfigParser, find: &[(&str, &str)]) -> Vec<(String, String)> {
        let _ = parser;
        find.iter().map(|(k, v)| ((*k).to_owned(), render(v, &env()))).collect()
    }

    #[test]
    fn placeholders_are_filled_and_unknown_ones_kept() {
        assert_eq!(
            render(
                "{{server.build.default.port}} {{server.build.env.MOTD}} {{env.MAX_USERS}} {{config.docker.interface}} {{",
                &env()
            ),
            "30001 Hello 7 {{config.docker.interface}} {{"
        );
    }

    #[test]
    fn every_parser_sets_what_it_is_told() {
        let find = edit(
            ConfigParser::File,
            &[("sv_port", "sv_port {{server.build.default.port}}"), ("sv_name", "sv_name x")],
        );
        assert_eq!(
            lines(
                "# sv_port 1\nsv_port 8303\nother 1\n",
                &find,
                |l, k| l.starts_with(k),
                |_, v| v.to_owned()
            ),
            "# sv_port 1\nsv_port 30001\nother 1\nsv_name x\n"
        );

        let find = edit(ConfigParser::Properties, &[("server-port", "{{server.build.default.port}}")]);
        let props = |line: &str, key: &str| line.split_once(['=', ':']).is_some_and(|(k, _)| k.trim() == key);
        assert_eq!(
            lines("motd=A\nserver-port = 25565\n", &find, props, |k, v| format!("{k}={v}")),
            "motd=A\nserver-port=30001\n"
        );

        let find = edit(
            ConfigParser::Ini,
            &[("Server.Port", "{{server.build.default.port}}"), ("Game.Name", "x"), ("top", "1")],
        );
        assert_eq!(
            ini("[Server]\nPort=1\nHost=a\n", &find),
            "top=1\n[Server]\nPort=30001\nHost=a\n[Game]\nName=x\n"
        );

        let find = edit(
            ConfigParser::Json,
            &[
                ("server.port", "{{server.build.default.port}}"),
                ("listeners.*.host", "0.0.0.0"),
                ("motd", "{{env.MOTD}}"),
            ],
        );
        let json = structured(
            r#"{"server": {"port": 1}, "listeners": [{"host": "a"}, {"host": "b"}]}"#,
            &find,
            false,
        )
        .expect("json");
        let json: Value = serde_json::from_str(&json).expect("valid");
        assert_eq!(json["server"]["port"], 30001);
        assert_eq!(json["listeners"][1]["host"], "0.0.0.0");
        assert_eq!(json["motd"], "Hello");

        let find = edit(ConfigParser::Yaml, &[("settings.max-players", "{{server.build.env.MAX_USERS}}")]);
        let yaml = structured("settings:\n  max-players: 20\n  name: a\n", &find, true).expect("yaml");
        let yaml: Value = serde_saphyr::from_str(&yaml).expect("valid");
        assert_eq!(
            (yaml["settings"]["max-players"].as_i64(), yaml["settings"]["name"].as_str()),
            (Some(7), Some("a"))
        );

        let find = edit(
            ConfigParser::Xml,
            &[("config.port", "{{server.build.default.port}}"), ("config.name", "a<b")],
        );
        assert_eq!(
            xml("<?xml version=\"1.0\"?>\n<config>\n  <port>1<!-- old --></port>\n  <name/>\n  <other>x</other>\n</config>\n", &find).expect("xml"),
            "<?xml version=\"1.0\"?>\n<config>\n  <port>30001</port>\n  <name>a&lt;b</name>\n  <other>x</other>\n</config>\n"
        );
        assert!(structured("{", &find, false).is_err());
        assert!(xml("<a></b>", &find).is_err());
    }

    #[test]
    fn files_are_edited_beneath_the_directory_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let outside = tempfile::tempdir().expect("tempdir");
        std::fs::write(outside.path().join("victim"), "port=1\n").expect("write");
        std::os::unix::fs::symlink(outside.path().join("victim"), dir.path().join("linked.properties"))
            .expect("link");
        let edits = |file: &str| {
            vec![ConfigEdit {
                file: file.into(),
                parser: ConfigParser::Properties,
                find: [("port".to_owned(), "{{server.build.default.port}}".to_owned())].into(),
            }]
        };
        apply(dir.path(), &edits("conf/new.properties"), &env()).expect("made");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("conf/new.properties")).expect("read"),
            "port=30001\n"
        );
        assert!(apply(dir.path(), &edits("linked.properties"), &env()).is_err());
        assert!(apply(dir.path(), &edits("../escape.properties"), &env()).is_err());
        assert_eq!(std::fs::read_to_string(outside.path().join("victim")).expect("read"), "port=1\n");
    }
}
