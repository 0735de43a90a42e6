//! The template catalog: what a game server runs, as the `[game]` section of its agent's
//! configuration.
//!
//! Built-in templates are embedded (`templates/*.toml` in this crate); an operator adds or
//! overrides templates with `*.toml` files in the templates directory. `{zlh}` in an argument
//! stands for the `zlh` executable where the server runs (each driver fills it in). `custom`
//! takes its command from the request.

pub mod egg;

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use zlh_proto::agent_config::{GameSection, ListenPort, Pattern, StopMethod, StopSignal};
use zlh_proto::api::{
    CreateServer, LimitsRequest, PortProtocol, PortSpec, PortView, ServerKind, TemplateView,
};

const BUILT_IN: &[(&str, &str)] = &[
    ("minecraft-java", include_str!("../../templates/minecraft-java.toml")),
    ("sample", include_str!("../../templates/sample.toml")),
];
const DEV_SHELL: &str = include_str!("../../templates/dev-shell.toml");
/// The template whose command comes from the request (admins only).
pub const CUSTOM: &str = "custom";

/// The longest command a custom template may have, in arguments and bytes per argument.
const MAX_ARGS: usize = 256;
const MAX_ARG_BYTES: usize = 4096;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Template {
    description: String,
    /// The ports it needs, the main one first; the game gets them as `{port.<name>}` and the
    /// first as `SERVER_PORT`.
    #[serde(default)]
    ports: Vec<PortSpec>,
    /// The container image it runs in (drivers with containers; their default when none).
    #[serde(default)]
    image: Option<String>,
    /// What its servers may use unless their owner chooses otherwise (the operator's default
    /// for what it leaves out).
    #[serde(default)]
    limits: LimitsRequest,
    game: GameSection,
}

/// What a create request runs: the agent's `[game]` section, with `{port.<name>}` still to be
/// filled in, and the ports to allocate for it.
#[derive(Debug, Clone)]
pub struct GamePlan {
    /// The `[game]` section.
    pub game: GameSection,
    /// The ports it needs, the main one first.
    pub ports: Vec<PortSpec>,
    /// The container image it names.
    pub image: Option<String>,
    /// The limits it chooses.
    pub limits: LimitsRequest,
}

impl GamePlan {
    /// The `[game]` section with its ports filled in: `{port.<name>}` in arguments and
    /// environment values, and `SERVER_PORT` (the first port) in the environment.
    pub fn with_ports(&self, allocated: &[PortView]) -> GameSection {
        let fill = |text: &str| {
            allocated.iter().fold(text.to_owned(), |text, port| {
                text.replace(&format!("{{port.{}}}", port.name), &port.port.to_string())
            })
        };
        let mut game = self.game.clone();
        game.argv = game.argv.iter().map(|arg| fill(arg)).collect();
        game.env = game.env.iter().map(|(key, value)| (key.clone(), fill(value))).collect();
        if let Some(first) = allocated.first() {
            game.env.insert("SERVER_PORT".into(), first.port.to_string());
        }
        // Ready only once the game listens on them (when it has a ready line to wait for).
        if game.ready_pattern.is_some() {
            game.listen_ports = allocated
                .iter()
                .map(|port| ListenPort { port: port.port, protocol: port.protocol })
                .collect();
        }
        game
    }
}

/// Why a create request names no usable template.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TemplateError {
    /// No template by that name.
    #[error("there is no template named {0:?} (see GET /api/templates)")]
    Unknown(String),
    /// The request does not fit the template (a custom command that is missing or too long).
    #[error("{0}")]
    Invalid(String),
}

/// Every template, by name.
#[derive(Debug, Clone)]
pub struct TemplateCatalog {
    templates: BTreeMap<String, Template>,
    dev_shell: Template,
}

fn parse(name: &str, text: &str) -> Result<Template, String> {
    let template: Template = toml::from_str(text).map_err(|e| format!("template {name}: {e}"))?;
    if template.game.argv.first().is_none_or(|program| program.is_empty()) {
        return Err(format!("template {name}: game.argv must name a program"));
    }
    let texts = template.game.argv.iter().chain(template.game.env.values());
    for text in texts {
        let mut rest = text.as_str();
        while let Some(at) = rest.find("{port.") {
            let after = &rest[at + "{port.".len()..];
            let port = after.split('}').next().unwrap_or_default();
            if !template.ports.iter().any(|p| p.name == port) {
                return Err(format!("template {name}: {{port.{port}}} names no port in its ports list"));
            }
            rest = after;
        }
    }
    Ok(template)
}

impl TemplateCatalog {
    /// The built-in templates plus those in `dir` (a broken file is logged and skipped).
    pub fn load(dir: Option<&Path>) -> TemplateCatalog {
        let mut templates: BTreeMap<String, Template> = BUILT_IN
            .iter()
            .map(|(name, text)| {
                ((*name).to_owned(), parse(name, text).expect("built-in templates are valid"))
            })
            .collect();
        let files = dir.and_then(|dir| std::fs::read_dir(dir).ok()).into_iter().flatten().flatten();
        for file in files {
            let path = file.path();
            let Some(name) = path.file_stem().and_then(|s| s.to_str()).map(str::to_owned) else { continue };
            if path.extension().is_none_or(|e| e != "toml") || name == CUSTOM {
                continue;
            }
            match std::fs::read_to_string(&path)
                .map_err(|e| e.to_string())
                .and_then(|text| parse(&name, &text))
            {
                Ok(template) => {
                    templates.insert(name, template);
                }
                Err(error) => tracing::error!(path = %path.display(), %error, "template skipped"),
            }
        }
        TemplateCatalog {
            templates,
            dev_shell: parse("dev-shell", DEV_SHELL).expect("built-in templates are valid"),
        }
    }

    /// The catalog as `GET /api/templates` shows it.
    pub fn list(&self) -> Vec<TemplateView> {
        let mut list: Vec<TemplateView> = self
            .templates
            .iter()
            .map(|(name, t)| TemplateView { name: name.clone(), description: t.description.clone() })
            .collect();
        list.push(TemplateView {
            name: CUSTOM.into(),
            description: "Your own command (`command`, optional `ready_pattern`)".into(),
        });
        list
    }

    /// What a create request runs, or why the request is wrong.
    pub fn plan_for(&self, request: &CreateServer) -> Result<GamePlan, TemplateError> {
        let invalid = |message: &str| Err(TemplateError::Invalid(message.to_owned()));
        if request.kind == ServerKind::Dev {
            return Ok(GamePlan {
                game: self.dev_shell.game.clone(),
                ports: Vec::new(),
                image: self.dev_shell.image.clone(),
                limits: self.dev_shell.limits,
            });
        }
        let Some(name) = request.template.as_deref() else {
            return invalid("a game server needs a template (see GET /api/templates)");
        };
        if name != CUSTOM {
            if request.command.is_some() || request.ready_pattern.is_some() {
                return invalid("command and ready_pattern are only for the custom template");
            }
            let template = self.templates.get(name).ok_or_else(|| TemplateError::Unknown(name.to_owned()))?;
            return Ok(GamePlan {
                game: template.game.clone(),
                ports: template.ports.clone(),
                image: template.image.clone(),
                limits: template.limits,
            });
        }
        let command = request.command.as_deref().unwrap_or_default();
        if command.is_empty() || command[0].trim().is_empty() {
            return invalid("the custom template needs a command: a program and its arguments");
        }
        if command.len() > MAX_ARGS
            || command.iter().any(|arg| arg.len() > MAX_ARG_BYTES || arg.contains('\0'))
        {
            return invalid("the command is too long or contains a NUL byte");
        }
        let ready_pattern = request
            .ready_pattern
            .as_deref()
            .map(Pattern::new)
            .transpose()
            .map_err(|e| TemplateError::Invalid(format!("ready_pattern is not a valid regex: {e}")))?;
        let game = GameSection {
            // An arbitrary program knows SIGTERM, not a console command.
            stop: StopMethod::Signal(StopSignal::Term),
            stop_timeout: std::time::Duration::from_secs(10),
            ready_pattern,
            ..GameSection::new(command.to_vec())
        };
        // One port, which the program finds in `SERVER_PORT`.
        Ok(GamePlan {
            game,
            ports: vec![PortSpec { name: "game".into(), protocol: PortProtocol::Tcp }],
            image: None,
            limits: LimitsRequest::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The template the README shows operators is one this catalog reads.
    #[test]
    fn the_readmes_template_parses() {
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).expect("README");
        let after = &readme[readme.find("Game templates are").expect("the templates section")..];
        let block = &after[after.find("```toml\n").expect("an example") + 8..];
        let example = &block[..block.find("```").expect("its end")];
        let template = parse("paper", example).expect("the README's template");
        assert_eq!(template.ports.len(), 1);
        assert_eq!(template.game.start_timeout, std::time::Duration::from_secs(300));
    }

    fn request(template: Option<&str>, command: Option<&[&str]>) -> CreateServer {
        CreateServer {
            name: "x".into(),
            kind: ServerKind::Game,
            template: template.map(str::to_owned),
            command: command.map(|c| c.iter().map(|s| s.to_string()).collect()),
            ready_pattern: None,
            runtime: None,
            version: None,
            enable_code_server: false,
            limits: None,
        }
    }

    #[test]
    fn built_ins_expand_and_operators_can_add() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("terraria.toml"),
            "description = \"T\"\n[game]\nargv = [\"./TerrariaServer\"]\n",
        )
        .expect("write");
        std::fs::write(dir.path().join("broken.toml"), "description = 1").expect("write");
        let catalog = TemplateCatalog::load(Some(dir.path()));
        let names: Vec<String> = catalog.list().into_iter().map(|t| t.name).collect();
        assert_eq!(names, ["minecraft-java", "sample", "terraria", "custom"]);
        let plan = catalog.plan_for(&request(Some("sample"), None)).expect("sample");
        assert_eq!(plan.game.argv[0], "{zlh}", "the driver says where zlh is");
        let game =
            plan.with_ports(&[PortView { name: "game".into(), protocol: PortProtocol::Tcp, port: 30001 }]);
        assert!(game.argv.contains(&"30001".to_owned()), "{:?}", game.argv);
        assert_eq!(game.env["SERVER_PORT"], "30001");
        std::fs::write(
            dir.path().join("typo.toml"),
            "description = \"T\"\n[game]\nargv = [\"x\", \"{port.gaem}\"]\n",
        )
        .expect("write");
        let catalog = TemplateCatalog::load(Some(dir.path()));
        assert!(
            catalog.list().iter().all(|t| t.name != "typo"),
            "a template naming an undeclared port is refused"
        );
    }

    #[test]
    fn bad_requests_say_why() {
        let catalog = TemplateCatalog::load(None);
        let refused = |r: CreateServer| catalog.plan_for(&r).expect_err("refused");
        assert_eq!(refused(request(Some("quake"), None)), TemplateError::Unknown("quake".into()));
        let invalid = |r: CreateServer| matches!(refused(r), TemplateError::Invalid(_));
        assert!(invalid(request(None, None)));
        assert!(invalid(request(Some("custom"), None)));
        assert!(invalid(request(Some("sample"), Some(&["sh"]))));
        let mut bad_pattern = request(Some("custom"), Some(&["sh"]));
        bad_pattern.ready_pattern = Some("(".into());
        assert!(invalid(bad_pattern));
        assert!(catalog.plan_for(&request(Some("custom"), Some(&["/bin/sh", "-c", "sleep 9"]))).is_ok());
    }
}
