//! Pterodactyl and Pelican eggs: the community's game definitions, read into what a template
//! needs. Four shapes are read: Pterodactyl's `PTDL_v1` (its `config.*` fields are JSON inside
//! strings, one `image`) and `PTDL_v2` (`docker_images`), and Pelican's `PLCN_*` in JSON or
//! YAML (`startup_commands`, rules as lists). Whatever an egg says that ZeroLagHub cannot honour
//! is listed in [`Egg::unsupported`], never dropped in silence; what makes no sense (malformed
//! text, an unknown config parser, a rule that cannot be read) refuses the whole egg.

use std::collections::BTreeMap;

use serde_json::Value;

/// Why an egg was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EggError {
    /// Neither JSON nor YAML, or not an egg's shape.
    #[error("this is not an egg: {0}")]
    Malformed(String),
    /// A config file names a parser no egg runtime has.
    #[error("config file {file}: unknown parser `{parser}` (file, properties, ini, yaml, json, xml)")]
    UnknownParser {
        /// The file the edit is for.
        file: String,
        /// What the egg named.
        parser: String,
    },
    /// A variable's rules cannot be read.
    #[error("variable {variable}: {problem}")]
    BadRule {
        /// The variable's env name.
        variable: String,
        /// What is wrong.
        problem: String,
    },
}

/// Which of the egg formats a file was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EggFormat {
    /// Pterodactyl, before `docker_images`.
    PtdlV1,
    /// Pterodactyl with `docker_images`.
    PtdlV2,
    /// Pelican (JSON or YAML).
    Pelican,
}

/// An egg, as a template is made from it.
#[derive(Debug, Clone)]
pub struct Egg {
    /// The format it came in.
    pub format: EggFormat,
    /// Its name.
    pub name: String,
    /// What it is, for people.
    pub description: String,
    /// The images it offers, `(label, image reference)`, the default first.
    pub images: Vec<(String, String)>,
    /// The startup command line, with `{{VARIABLE}}` placeholders.
    pub startup: String,
    /// How the game is stopped.
    pub stop: EggStop,
    /// Lines of the console that mean the game is up (any of them).
    pub done: Vec<String>,
    /// Edits of config files before each start.
    pub config_files: Vec<ConfigFile>,
    /// The install step, if the egg has one.
    pub install: Option<InstallScript>,
    /// Its variables.
    pub variables: Vec<Variable>,
    /// Files the file API must refuse (patterns).
    pub file_denylist: Vec<String>,
    /// What the egg asks for that ZeroLagHub does not do, one line each.
    pub unsupported: Vec<String>,
}

/// How an egg stops its game.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EggStop {
    /// `^C`: SIGINT to the game.
    Interrupt,
    /// A console command (`stop`, `quit`).
    Command(String),
}

/// An egg's install step: a script run in its own container with the server's data at
/// `/mnt/server`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallScript {
    /// The script.
    pub script: String,
    /// The image it runs in.
    pub container: String,
    /// The shell that runs it (`bash`, `ash`).
    pub entrypoint: String,
}

/// A config file edited before each start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigFile {
    /// Its path in the server's directory.
    pub path: String,
    /// How it is read and written.
    pub parser: ConfigParser,
    /// What to set: key (or, for `file`, the start of a line) → value with placeholders.
    pub find: BTreeMap<String, String>,
}

/// The config file formats eggs edit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigParser {
    /// Lines starting with a key are replaced.
    File,
    /// Java `.properties`.
    Properties,
    /// INI sections (`section.key`).
    Ini,
    /// YAML (`a.b.c` paths).
    Yaml,
    /// JSON (`a.b.c` paths).
    Json,
    /// XML (`a.b.c` element paths).
    Xml,
}

impl ConfigParser {
    fn named(name: &str) -> Option<ConfigParser> {
        Some(match name {
            "file" => ConfigParser::File,
            "properties" => ConfigParser::Properties,
            "ini" => ConfigParser::Ini,
            "yaml" | "yml" => ConfigParser::Yaml,
            "json" => ConfigParser::Json,
            "xml" => ConfigParser::Xml,
            _ => return None,
        })
    }
}

/// A variable the startup line and config files use.
#[derive(Debug, Clone)]
pub struct Variable {
    /// Its name, for people.
    pub name: String,
    /// What it does.
    pub description: String,
    /// The environment name (`SERVER_JARFILE`).
    pub env: String,
    /// Its value unless the owner sets one.
    pub default: String,
    /// Whether the owner sees it.
    pub user_viewable: bool,
    /// Whether the owner may change it.
    pub user_editable: bool,
    /// What a value must satisfy.
    pub rules: Vec<Rule>,
}

/// One of the validation rules eggs use (Laravel's names).
#[derive(Debug, Clone)]
pub enum Rule {
    /// Not empty.
    Required,
    /// May be empty (then no other rule applies).
    Nullable,
    /// Any text (the `max`/`min`/`between` sizes are lengths).
    String,
    /// A number (sizes are values).
    Numeric,
    /// A whole number (sizes are values).
    Integer,
    /// `true`/`false`/`1`/`0`.
    Boolean,
    /// Letters only.
    Alpha,
    /// Letters and digits.
    AlphaNum,
    /// Letters, digits, `-` and `_`.
    AlphaDash,
    /// At most this size.
    Max(f64),
    /// At least this size.
    Min(f64),
    /// Between the two sizes.
    Between(f64, f64),
    /// Exactly this size.
    Size(f64),
    /// One of these.
    In(Vec<String>),
    /// None of these.
    NotIn(Vec<String>),
    /// Matching this pattern.
    Regex(regex::Regex),
}

impl Variable {
    /// Checks a value against the rules; the message says which rule failed, as people read it.
    pub fn check(&self, value: &str) -> Result<(), String> {
        // An empty value is refused when required; otherwise there is nothing to check.
        if value.is_empty() {
            return match self.rules.iter().any(|r| matches!(r, Rule::Required)) {
                true => Err(format!("{} is required", self.name)),
                false => Ok(()),
            };
        }
        let numeric = self.rules.iter().any(|r| matches!(r, Rule::Numeric | Rule::Integer));
        let size =
            || if numeric { value.parse::<f64>().unwrap_or(f64::NAN) } else { value.chars().count() as f64 };
        let what = if numeric { "" } else { " characters" };
        let name = &self.name;
        for rule in &self.rules {
            let ok = match rule {
                Rule::Required | Rule::Nullable | Rule::String => true,
                Rule::Numeric => value.parse::<f64>().is_ok_and(f64::is_finite),
                Rule::Integer => value.parse::<i64>().is_ok(),
                Rule::Boolean => matches!(value, "true" | "false" | "1" | "0"),
                Rule::Alpha => value.chars().all(char::is_alphabetic),
                Rule::AlphaNum => value.chars().all(char::is_alphanumeric),
                Rule::AlphaDash => value.chars().all(|c| c.is_alphanumeric() || c == '-' || c == '_'),
                Rule::Max(max) => size() <= *max,
                Rule::Min(min) => size() >= *min,
                Rule::Between(min, max) => (*min..=*max).contains(&size()),
                Rule::Size(exact) => size() == *exact,
                Rule::In(allowed) => allowed.iter().any(|a| a == value),
                Rule::NotIn(refused) => !refused.iter().any(|r| r == value),
                Rule::Regex(pattern) => pattern.is_match(value),
            };
            if !ok {
                return Err(match rule {
                    Rule::Numeric => format!("{name} must be a number"),
                    Rule::Integer => format!("{name} must be a whole number"),
                    Rule::Boolean => format!("{name} must be true or false"),
                    Rule::Alpha => format!("{name} may hold letters only"),
                    Rule::AlphaNum => format!("{name} may hold letters and digits only"),
                    Rule::AlphaDash => format!("{name} may hold letters, digits, - and _ only"),
                    Rule::Max(max) => format!("{name} must be at most {max}{what}"),
                    Rule::Min(min) => format!("{name} must be at least {min}{what}"),
                    Rule::Between(min, max) => format!("{name} must be between {min} and {max}{what}"),
                    Rule::Size(exact) => format!("{name} must be exactly {exact}{what}"),
                    Rule::In(allowed) => format!("{name} must be one of: {}", allowed.join(", ")),
                    Rule::NotIn(_) => format!("{name} may not be that value"),
                    Rule::Regex(pattern) => format!("{name} must match {}", pattern.as_str()),
                    Rule::Required | Rule::Nullable | Rule::String => unreachable!("always satisfied"),
                });
            }
        }
        Ok(())
    }
}

/// Reads rules from `required|string|max:20` or `["required", "string", "max:20"]`. Rules no
/// runtime of ours checks are listed in `unsupported`.
fn rules(variable: &str, raw: &Value, unsupported: &mut Vec<String>) -> Result<Vec<Rule>, EggError> {
    let bad = |problem: String| EggError::BadRule { variable: variable.to_owned(), problem };
    let parts: Vec<String> = match raw {
        Value::Null => Vec::new(),
        Value::String(text) => split_rules(text),
        Value::Array(items) => items.iter().map(|i| i.as_str().unwrap_or_default().to_owned()).collect(),
        other => return Err(bad(format!("rules must be text or a list, not {other}"))),
    };
    let number = |rule: &str, text: &str| {
        text.trim().parse::<f64>().map_err(|_| bad(format!("`{rule}` needs a number")))
    };
    let mut rules = Vec::new();
    for part in parts.iter().map(|p| p.trim()).filter(|p| !p.is_empty()) {
        let (name, argument) = part.split_once(':').unwrap_or((part, ""));
        rules.push(match name {
            "required" => Rule::Required,
            "nullable" | "sometimes" => Rule::Nullable,
            "string" => Rule::String,
            "numeric" => Rule::Numeric,
            "integer" | "int" => Rule::Integer,
            "boolean" | "bool" => Rule::Boolean,
            "alpha" => Rule::Alpha,
            "alpha_num" => Rule::AlphaNum,
            "alpha_dash" => Rule::AlphaDash,
            "max" => Rule::Max(number(part, argument)?),
            "min" => Rule::Min(number(part, argument)?),
            "size" => Rule::Size(number(part, argument)?),
            "between" => {
                let (min, max) =
                    argument.split_once(',').ok_or_else(|| bad(format!("`{part}` needs two numbers")))?;
                Rule::Between(number(part, min)?, number(part, max)?)
            }
            "in" => Rule::In(argument.split(',').map(str::to_owned).collect()),
            "not_in" => Rule::NotIn(argument.split(',').map(str::to_owned).collect()),
            "regex" => Rule::Regex(php_regex(argument).map_err(|e| bad(format!("`{part}`: {e}")))?),
            _ => {
                unsupported.push(format!("variable {variable}: the rule `{part}` is not checked"));
                continue;
            }
        });
    }
    Ok(rules)
}

/// Splits `a|b|regex:/x|y/` at the bars, keeping a regex (always the last of its rule) whole.
fn split_rules(text: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        if rest.starts_with("regex:") {
            parts.push(rest.to_owned());
            break;
        }
        let (part, after) = rest.split_once('|').unwrap_or((rest, ""));
        parts.push(part.to_owned());
        rest = after;
    }
    parts
}

/// A PHP pattern (`/^[a-z]+$/i`) as a Rust one: delimiters removed, flags kept where Rust has
/// them.
fn php_regex(text: &str) -> Result<regex::Regex, String> {
    let text = text.trim();
    let delimiter = text.chars().next().ok_or("an empty pattern")?;
    let end =
        text.rfind(delimiter).filter(|&end| end > 0).ok_or("a pattern without its closing delimiter")?;
    let (pattern, flags) = (&text[delimiter.len_utf8()..end], &text[end + delimiter.len_utf8()..]);
    let unicode = flags.contains('u');
    let flags: String = flags.chars().filter(|f| "imsx".contains(*f)).collect();
    let pattern = if flags.is_empty() { pattern.to_owned() } else { format!("(?{flags}){pattern}") };
    // PCRE without `/u` means ASCII classes (`\w` is `[A-Za-z0-9_]`), and so do we; a pattern
    // that could then match half a character is read with Unicode classes instead.
    let build = |unicode| regex::RegexBuilder::new(&pattern).unicode(unicode).size_limit(8 << 20).build();
    match build(unicode) {
        Err(_) if !unicode => build(true),
        built => built,
    }
    .map_err(|e| e.to_string())
}

/// A field that PTDL_v1 stores as JSON inside a string and later formats store as itself.
fn embedded(value: &Value) -> Result<Value, EggError> {
    match value {
        Value::String(text) if text.trim().is_empty() => Ok(Value::Null),
        Value::String(text) => serde_json::from_str(text)
            .map_err(|e| EggError::Malformed(format!("an embedded JSON field: {e}"))),
        other => Ok(other.clone()),
    }
}

/// A template made from an egg: its TOML (what the templates directory holds) and what of the
/// egg it does not carry out, one line each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    /// The template file's text.
    pub toml: String,
    /// What the template leaves undone.
    pub notes: Vec<String>,
}

impl Egg {
    /// The template this egg makes today: its default image, its startup line run by `sh -c`
    /// with each `{{VARIABLE}}` taken from the environment (the variables' defaults; a shell
    /// expands a value, never runs it), one game port, the done lines as the ready pattern and
    /// the stop. What is not carried out yet is said in `notes`.
    pub fn to_template(&self) -> Imported {
        let mut env = toml::Table::new();
        for variable in &self.variables {
            env.insert(variable.env.clone(), toml::Value::String(variable.default.clone()));
        }
        let mut startup = self.startup.clone();
        for name in
            self.variables.iter().map(|v| v.env.as_str()).chain(["SERVER_PORT", "SERVER_MEMORY", "SERVER_IP"])
        {
            startup = startup.replace(&format!("{{{{{name}}}}}"), &format!("${{{name}}}"));
        }
        env.entry("SERVER_IP").or_insert_with(|| toml::Value::String("0.0.0.0".into()));
        let mut game = toml::Table::new();
        game.insert(
            "argv".into(),
            toml::Value::Array(["/bin/sh", "-c", &startup].map(|a| toml::Value::String(a.into())).into()),
        );
        game.insert("env".into(), toml::Value::Table(env));
        if !self.done.is_empty() {
            let pattern = self.done.iter().map(|line| regex::escape(line)).collect::<Vec<_>>().join("|");
            game.insert("ready_pattern".into(), toml::Value::String(pattern));
        }
        let stop = match &self.stop {
            EggStop::Interrupt => toml::toml! { signal = "SIGINT" },
            EggStop::Command(command) => {
                let mut stop = toml::Table::new();
                stop.insert("command".into(), toml::Value::String(command.clone()));
                stop
            }
        };
        game.insert("stop".into(), toml::Value::Table(stop));
        let mut template = toml::Table::new();
        let description = self.description.lines().next().unwrap_or_default().trim();
        let description =
            if description.is_empty() { self.name.clone() } else { format!("{}: {description}", self.name) };
        template.insert("description".into(), toml::Value::String(description));
        // Eggs do not say TCP or UDP: both are published, and listening on either is ready.
        let port = toml::toml! { name = "game" protocol = "both" };
        template.insert("ports".into(), toml::Value::Array(vec![toml::Value::Table(port)]));
        template.insert("image".into(), toml::Value::String(self.images[0].1.clone()));
        template.insert("game".into(), toml::Value::Table(game));

        let mut notes = self.unsupported.clone();
        if self.images.len() > 1 {
            notes.push(format!("{} images: the first ({}) is used", self.images.len(), self.images[0].1));
        }
        if self.install.is_some() {
            notes.push(
                "the install script is not run yet: put the game's files in place before the first start"
                    .into(),
            );
        }
        if !self.config_files.is_empty() {
            notes.push(format!("{} config file edits are not applied yet", self.config_files.len()));
        }
        if self.variables.iter().any(|v| v.user_editable) {
            notes.push("variables keep their defaults: owners cannot change them yet".into());
        }
        if !self.file_denylist.is_empty() {
            notes.push("file_denylist is not enforced yet".into());
        }
        if startup.contains("{{") {
            notes.push(
                "the startup line uses placeholders other than the egg's variables; they stay as written"
                    .into(),
            );
        }
        Imported { toml: toml::to_string(&template).unwrap_or_default(), notes }
    }
}

/// A field as text: a string as is, anything else (a number, a table) as JSON.
fn text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// `true`, `1`, `"1"` or `"true"`: older eggs use numbers.
fn flag(value: &Value) -> bool {
    match value {
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_i64() == Some(1),
        Value::String(s) => s == "1" || s == "true",
        _ => false,
    }
}

impl Egg {
    /// Reads an egg file, JSON or YAML.
    pub fn parse(source: &str) -> Result<Egg, EggError> {
        let value: Value = match serde_json::from_str(source) {
            Ok(value) => value,
            Err(json) if source.trim_start().starts_with('{') => {
                return Err(EggError::Malformed(format!("invalid JSON: {json}")));
            }
            Err(_) => serde_saphyr::from_str(source)
                .map_err(|e| EggError::Malformed(format!("invalid YAML: {e}")))?,
        };
        Egg::from_value(&value)
    }

    fn from_value(egg: &Value) -> Result<Egg, EggError> {
        let version = egg.pointer("/meta/version").and_then(Value::as_str).unwrap_or_default();
        let format = match version {
            "PTDL_v1" => EggFormat::PtdlV1,
            "PTDL_v2" => EggFormat::PtdlV2,
            v if v.starts_with("PLCN") => EggFormat::Pelican,
            other => {
                return Err(EggError::Malformed(format!(
                    "unknown meta.version `{other}` (PTDL_v1, PTDL_v2, PLCN_*)"
                )));
            }
        };
        let name = text(&egg["name"]);
        if name.trim().is_empty() {
            return Err(EggError::Malformed("it has no name".into()));
        }
        let mut unsupported = Vec::new();

        let mut images: Vec<(String, String)> = match &egg["docker_images"] {
            Value::Object(map) => map.iter().map(|(label, image)| (label.clone(), text(image))).collect(),
            _ => Vec::new(),
        };
        if let Some(list) = egg["images"].as_array() {
            images.extend(list.iter().map(|image| (text(image), text(image))));
        }
        if let Some(image) = egg["image"].as_str() {
            images.push((image.to_owned(), image.to_owned()));
        }
        if images.is_empty() {
            return Err(EggError::Malformed("it names no image".into()));
        }

        let startup = match &egg["startup_commands"] {
            Value::Object(map) => {
                if map.len() > 1 {
                    unsupported.push(format!("{} startup commands: the first is used", map.len()));
                }
                map.values().next().map(text).unwrap_or_default()
            }
            _ => text(&egg["startup"]),
        };
        if startup.trim().is_empty() {
            return Err(EggError::Malformed("it has no startup command".into()));
        }

        let config = &egg["config"];
        let stop = match text(&config["stop"]).as_str() {
            "^C" | "^c" | "" => EggStop::Interrupt,
            command if command.starts_with('^') => {
                unsupported.push(format!("the stop signal `{command}`: SIGINT is sent instead"));
                EggStop::Interrupt
            }
            command => EggStop::Command(command.to_owned()),
        };
        let startup_config = embedded(&config["startup"])?;
        let done = match &startup_config["done"] {
            Value::Array(lines) => lines.iter().map(text).collect(),
            Value::Null => Vec::new(),
            line => vec![text(line)],
        };
        for ignored in ["userInteraction", "strip_ansi"] {
            if !startup_config[ignored].is_null() {
                unsupported.push(format!("config.startup.{ignored} is not used"));
            }
        }
        if !embedded(&config["logs"])?.as_object().is_none_or(serde_json::Map::is_empty) {
            unsupported.push("config.logs: the console is the log".into());
        }
        let mut config_files = Vec::new();
        if let Value::Object(files) = embedded(&config["files"])? {
            for (path, edit) in files {
                let parser_name = text(&edit["parser"]);
                let parser = ConfigParser::named(&parser_name).ok_or_else(|| EggError::UnknownParser {
                    file: path.clone(),
                    parser: parser_name.clone(),
                })?;
                let find = match &edit["find"] {
                    Value::Object(find) => {
                        find.iter().map(|(key, value)| (key.clone(), text(value))).collect()
                    }
                    _ => BTreeMap::new(),
                };
                config_files.push(ConfigFile { path, parser, find });
            }
        }

        let installation = &egg["scripts"]["installation"];
        let install = match text(&installation["script"]) {
            script if script.trim().is_empty() => None,
            script => Some(InstallScript {
                // Eggs written on Windows carry CRLF, which shells choke on.
                script: script.replace("\r\n", "\n"),
                container: text(&installation["container"]),
                entrypoint: match text(&installation["entrypoint"]) {
                    entry if entry.is_empty() => "bash".into(),
                    entry => entry,
                },
            }),
        };

        let mut variables = Vec::new();
        for variable in egg["variables"].as_array().into_iter().flatten() {
            let env = text(&variable["env_variable"]);
            if env.is_empty() || !env.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(EggError::Malformed(format!("a variable's env_variable `{env}` is not a name")));
            }
            variables.push(Variable {
                name: text(&variable["name"]),
                description: text(&variable["description"]),
                default: text(&variable["default_value"]),
                user_viewable: flag(&variable["user_viewable"]),
                user_editable: flag(&variable["user_editable"]),
                rules: rules(&env, &variable["rules"], &mut unsupported)?,
                env,
            });
        }
        if let Some(features) = egg["features"].as_array().filter(|f| !f.is_empty()) {
            let names: Vec<String> = features.iter().map(text).collect();
            unsupported.push(format!("features ({}) have no helper here", names.join(", ")));
        }
        let file_denylist = egg["file_denylist"].as_array().into_iter().flatten().map(text).collect();
        Ok(Egg {
            format,
            name,
            description: text(&egg["description"]),
            images,
            startup,
            stop,
            done,
            config_files,
            install,
            variables,
            file_denylist,
            unsupported,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn variable(rules: &str) -> Variable {
        let mut unsupported = Vec::new();
        Variable {
            name: "Version".into(),
            description: String::new(),
            env: "VERSION".into(),
            default: String::new(),
            user_viewable: true,
            user_editable: true,
            rules: super::rules("VERSION", &Value::String(rules.into()), &mut unsupported).expect("rules"),
        }
    }

    fn egg(file: &str) -> Egg {
        let path = format!("{}/tests/eggs/{file}", env!("CARGO_MANIFEST_DIR"));
        Egg::parse(&std::fs::read_to_string(&path).expect("egg file"))
            .unwrap_or_else(|e| panic!("{file}: {e}"))
    }

    #[test]
    fn every_format_reads_into_one_shape() {
        let v1 = egg("ptdl-v1-teeworlds.json");
        assert_eq!(v1.format, EggFormat::PtdlV1);
        assert_eq!(
            v1.images,
            [("zlh-test/debian-games:v1".to_owned(), "zlh-test/debian-games:v1".to_owned())]
        );
        assert_eq!(
            (v1.stop.clone(), v1.done.clone()),
            (EggStop::Interrupt, vec!["server name is".to_owned()])
        );
        assert_eq!(v1.config_files[0].parser, ConfigParser::File);
        assert_eq!(v1.config_files[0].find["sv_port"], "sv_port {{server.build.default.port}}");
        let install = v1.install.as_ref().expect("install");
        assert!(!install.script.contains('\r') && install.entrypoint == "bash");
        assert!(v1.variables[0].user_editable && !v1.variables[1].user_editable, "1 and 0 are flags too");
        assert!(v1.unsupported.iter().any(|u| u.contains("userInteraction")), "{:?}", v1.unsupported);

        let v2 = egg("ptdl-v2-minetest.json");
        assert_eq!(v2.format, EggFormat::PtdlV2);
        assert_eq!(v2.images.len(), 2);
        assert_eq!(v2.images[0].1, "zlh-test/debian-games:v1");
        assert_eq!(v2.stop, EggStop::Command("/shutdown".into()));
        assert_eq!(v2.done, ["listening on", "Server for gameid"]);
        assert_eq!(v2.config_files[0].parser, ConfigParser::Properties);
        assert_eq!(v2.file_denylist, ["minetest.conf.bak", "*.sqlite-journal"]);
        assert!(v2.unsupported.iter().any(|u| u.contains("eula")), "{:?}", v2.unsupported);
        assert_eq!(v2.variables[2].check("Bob's world-1"), Ok(()));
        assert!(v2.variables[2].check("$(reboot)").is_err());

        let json = egg("pelican-wesnoth.json");
        assert_eq!(json.format, EggFormat::Pelican);
        assert!(json.startup.starts_with("wesnothd --port {{SERVER_PORT}}"));
        assert_eq!(json.config_files[0].find["motd"], "motd=\"{{server.build.env.MOTD}}\"");
        assert_eq!(json.done, ["Server started"]);
        assert_eq!(json.variables[1].check(""), Ok(()), "nullable");
        assert!(json.variables[0].check("9").is_err());

        let yaml = egg("pelican-openarena.yaml");
        assert_eq!(yaml.format, EggFormat::Pelican);
        assert_eq!(yaml.stop, EggStop::Command("quit".into()));
        assert_eq!(yaml.done, ["Opening IP socket"]);
        assert!(yaml.install.as_ref().is_some_and(|i| i.script.starts_with("#!/bin/bash\ncd /mnt/server")));
        assert_eq!(yaml.variables.len(), 2);
        assert_eq!(yaml.variables[1].check("40"), Err("Max clients must be between 2 and 32".into()));
        assert!(yaml.unsupported.is_empty(), "{:?}", yaml.unsupported);
    }

    #[test]
    fn bad_eggs_are_refused_with_what_is_wrong() {
        let good = std::fs::read_to_string(format!(
            "{}/tests/eggs/pelican-wesnoth.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .expect("egg");
        let refused = |text: &str| Egg::parse(text).expect_err("refused");
        assert!(matches!(refused("{\"meta\": "), EggError::Malformed(m) if m.contains("invalid JSON")));
        assert!(matches!(refused("just: [some yaml"), EggError::Malformed(_)));
        assert!(
            matches!(refused(&good.replace("PLCN_v1", "EGG_v9")), EggError::Malformed(m) if m.contains("EGG_v9"))
        );
        assert_eq!(
            refused(&good.replace("\"parser\": \"file\"", "\"parser\": \"toml\"")),
            EggError::UnknownParser { file: "wesnothd.cfg".into(), parser: "toml".into() }
        );
        assert!(matches!(refused(&good.replace("between:1,8", "between:1")), EggError::BadRule { .. }));
        assert!(matches!(
            refused(&good.replace("\"env_variable\": \"THREADS\"", "\"env_variable\": \"A B\"")),
            EggError::Malformed(_)
        ));
    }

    #[test]
    fn rules_are_enforced_as_eggs_mean_them() {
        let text = variable("required|string|max:5");
        assert_eq!(text.check("1.20"), Ok(()));
        assert_eq!(text.check("1.20.4"), Err("Version must be at most 5 characters".into()));
        assert_eq!(text.check(""), Err("Version is required".into()));
        let number = variable("required|numeric|between:1,10");
        assert_eq!(number.check("10"), Ok(()));
        assert!(number.check("11").is_err() && number.check("ten").is_err());
        assert_eq!(variable("nullable|integer").check(""), Ok(()));
        assert_eq!(
            variable("in:paper,vanilla").check("forge"),
            Err("Version must be one of: paper, vanilla".into())
        );
        assert_eq!(variable("boolean").check("1"), Ok(()));
        let pattern = variable("required|regex:/^([0-9]+\\.[0-9]+(\\.[0-9]+)?|latest)$/i");
        assert_eq!(pattern.check("LATEST"), Ok(()));
        assert_eq!(pattern.check("1.2.3"), Ok(()));
        assert!(pattern.check("1.2.3; rm -rf /").is_err());
        // A bar inside the pattern is part of it.
        assert_eq!(variable("regex:/^(a|b)$/").check("b"), Ok(()));
    }

    #[test]
    fn unknown_rules_are_said_and_unreadable_ones_refused() {
        let mut unsupported = Vec::new();
        let read =
            rules("V", &serde_json::json!(["required", "url", "max:3"]), &mut unsupported).expect("rules");
        assert_eq!(read.len(), 2);
        assert_eq!(unsupported, ["variable V: the rule `url` is not checked"]);
        let refused = rules("V", &Value::String("max:lots".into()), &mut unsupported);
        assert!(matches!(refused, Err(EggError::BadRule { .. })), "{refused:?}");
        assert!(rules("V", &Value::String("regex:/(/".into()), &mut unsupported).is_err());
    }
}
