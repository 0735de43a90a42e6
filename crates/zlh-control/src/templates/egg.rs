//! Pterodactyl and Pelican eggs: the community's game definitions, read into what a template
//! needs. Four shapes are read: Pterodactyl's `PTDL_v1` (its `config.*` fields are JSON inside
//! strings, one `image`) and `PTDL_v2` (`docker_images`), and Pelican's `PLCN_*` in JSON or
//! YAML (`startup_commands`, rules as lists). Whatever an egg says that ZeroLagHub cannot honour
//! is listed in [`Egg::unsupported`], never dropped in silence; what makes no sense (malformed
//! text, an unknown config parser, a rule that cannot be read) refuses the whole egg.

use std::collections::BTreeMap;

use serde_json::Value;
use zlh_proto::agent_config::{ConfigEdit, ConfigParser};

use zlh_proto::agent_config::{GameSection, Pattern, StopMethod, StopSignal};
use zlh_proto::api::{ImageChoice, LimitsRequest, PortProtocol, PortSpec};

use super::variables::{Variable, VariableSpec, split_rules};
use super::{InstallStep, TemplateFile};

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
    /// A variable cannot be read (its name, its rules).
    #[error("{0}")]
    BadVariable(String),
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
    pub config_files: Vec<ConfigEdit>,
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
    /// The template this egg makes: its images (the first the default), its startup line run
    /// by `sh -c` with each `{{VARIABLE}}` taken from the environment (a shell expands a
    /// value, never runs it), its variables with their rules, one game port, the done lines
    /// as the ready pattern, the stop, the config file edits, the install step and the
    /// denylist. What it cannot carry out is said in `notes`.
    pub fn to_template(&self) -> Imported {
        let mut startup = self.startup.clone();
        for name in self.variables.iter().map(|v| v.spec.env.as_str()).chain([
            "SERVER_PORT",
            "SERVER_MEMORY",
            "SERVER_IP",
        ]) {
            startup = startup.replace(&format!("{{{{{name}}}}}"), &format!("${{{name}}}"));
        }
        let mut game = GameSection::new(["/bin/sh", "-c", &startup].map(str::to_owned).to_vec());
        game.env.insert("SERVER_IP".into(), "0.0.0.0".into());
        if !self.done.is_empty() {
            let pattern = self.done.iter().map(|line| regex::escape(line)).collect::<Vec<_>>().join("|");
            game.ready_pattern = Pattern::new(&pattern).ok();
        }
        game.stop = match &self.stop {
            EggStop::Interrupt => StopMethod::Signal(StopSignal::Int),
            EggStop::Command(command) => StopMethod::Command(command.clone()),
        };
        game.config_files = self.config_files.clone();
        game.file_denylist = self.file_denylist.clone();
        let description = self.description.lines().next().unwrap_or_default().trim();
        let description =
            if description.is_empty() { self.name.clone() } else { format!("{}: {description}", self.name) };
        let template = TemplateFile {
            description,
            // Eggs do not say TCP or UDP: both are published, and listening on either is ready.
            ports: vec![PortSpec { name: "game".into(), protocol: PortProtocol::Both }],
            image: None,
            images: self
                .images
                .iter()
                .map(|(label, image)| ImageChoice { label: label.clone(), image: image.clone() })
                .collect(),
            limits: LimitsRequest::default(),
            variables: self.variables.iter().map(|v| v.spec.clone()).collect(),
            install: self.install.as_ref().map(|install| InstallStep {
                image: install.container.clone(),
                entrypoint: install.entrypoint.clone(),
                script: install.script.clone(),
            }),
            game,
        };
        let mut notes = self.unsupported.clone();
        if startup.contains("{{") {
            notes.push(
                "the startup line uses placeholders other than the egg's variables; they stay as written"
                    .into(),
            );
        }
        Imported { toml: toml::to_string(&template).unwrap_or_default(), notes }
    }
}

/// The largest egg fetched from a URL.
const MAX_EGG: usize = 1 << 20;

/// An egg's text from the web: `http` or `https` (verified against this machine's trusted
/// certificates), following up to five redirects, at most 1 MiB, within 10 s; the error says
/// why not.
pub async fn fetch(url: &str) -> Result<String, String> {
    use http_body_util::BodyExt;
    let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(native_roots())
    .with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .build();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build::<_, http_body_util::Empty<bytes::Bytes>>(connector);
    let failed = |e: &dyn std::fmt::Display| format!("the egg could not be fetched: {e}");
    let mut url = reqwest::Url::parse(url).map_err(|e| format!("that is not a URL: {e}"))?;
    let fetched = async {
        for _ in 0..=5 {
            if !matches!(url.scheme(), "http" | "https") {
                return Err("eggs are fetched over http or https only".to_owned());
            }
            let uri: hyper::Uri = url.as_str().parse().map_err(|e| failed(&e))?;
            let response = client.get(uri).await.map_err(|e| failed(&e))?;
            let status = response.status();
            if status.is_redirection() {
                let location = response.headers().get(hyper::header::LOCATION).and_then(|l| l.to_str().ok());
                let next = location.ok_or_else(|| failed(&"a redirect without a Location"))?;
                url = url.join(next).map_err(|e| failed(&e))?;
                continue;
            }
            if !status.is_success() {
                return Err(failed(&format!("the server answered {status}")));
            }
            let body = http_body_util::Limited::new(response.into_body(), MAX_EGG);
            let bytes = body.collect().await.map_err(|e| {
                match e.downcast_ref::<http_body_util::LengthLimitError>() {
                    Some(_) => "the egg is larger than 1 MiB".to_owned(),
                    None => failed(&e),
                }
            })?;
            return String::from_utf8(bytes.to_bytes().to_vec())
                .map_err(|_| "the egg is not UTF-8 text".to_owned());
        }
        Err(failed(&"more than five redirects"))
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), fetched)
        .await
        .map_err(|_| failed(&"no answer within 10 s"))?
}

/// The certificates this machine trusts (unreadable ones are skipped).
fn native_roots() -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    for certificate in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(certificate);
    }
    roots
}

/// A template name from an egg's: lower case, letters and digits joined by dashes.
pub fn name_of(egg: &str) -> String {
    let words: Vec<String> = egg
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
        .collect();
    words.join("-")
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
                config_files.push(ConfigEdit { file: path, parser, find });
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
            let rules = match &variable["rules"] {
                Value::Null => Vec::new(),
                Value::String(text) => split_rules(text),
                Value::Array(items) => items.iter().map(text).collect(),
                other => {
                    return Err(EggError::BadVariable(format!(
                        "variable {env}: rules must be text or a list, not {other}"
                    )));
                }
            };
            let spec = VariableSpec {
                name: text(&variable["name"]),
                description: text(&variable["description"]),
                default: text(&variable["default_value"]),
                user_viewable: flag(&variable["user_viewable"]),
                user_editable: flag(&variable["user_editable"]),
                rules,
                env,
            };
            variables.push(Variable::new(spec, &mut unsupported).map_err(EggError::BadVariable)?);
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
        assert!(
            v1.variables[0].spec.user_editable && !v1.variables[1].spec.user_editable,
            "1 and 0 are flags too"
        );
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
        assert!(json.startup.starts_with("/usr/games/wesnothd-1.16 --port {{SERVER_PORT}}"));
        assert_eq!(json.config_files[0].find["motd"], "motd=\"{{server.build.env.MOTD}}\"");
        assert_eq!(json.done, ["opened fifo at"]);
        assert_eq!(json.file_denylist, ["wesnothd.fifo"]);
        assert_eq!(json.variables[1].check(""), Ok(()), "nullable");
        assert!(json.variables[0].check("9").is_err());

        let yaml = egg("pelican-freeciv.yaml");
        assert_eq!(yaml.format, EggFormat::Pelican);
        assert_eq!(yaml.stop, EggStop::Command("quit".into()));
        assert_eq!(yaml.done, ["Now accepting new client connections"]);
        assert!(
            yaml.install
                .as_ref()
                .is_some_and(|i| i.script.starts_with("#!/bin/bash\nset -e\ncd /mnt/server"))
        );
        assert_eq!(yaml.variables.len(), 3);
        assert_eq!(yaml.variables[1].check("40"), Err("AI players must be between 2 and 32".into()));
        assert!(!yaml.variables[2].spec.user_viewable);
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
        assert!(matches!(refused(&good.replace("between:1,8", "between:1")), EggError::BadVariable(_)));
        assert!(matches!(
            refused(&good.replace("\"env_variable\": \"THREADS\"", "\"env_variable\": \"A B\"")),
            EggError::BadVariable(_)
        ));
    }
}
