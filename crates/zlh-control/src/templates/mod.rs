//! The template catalog: what a game server runs, as the `[game]` section of its agent's
//! configuration.
//!
//! Built-in templates are embedded (`templates/*.toml` in this crate); an operator adds or
//! overrides templates with `*.toml` files in the templates directory. `{zlh}` in an argument
//! stands for the `zlh` executable where the server runs (each driver fills it in). `custom`
//! takes its command from the request.

pub mod egg;
pub mod variables;

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use zlh_proto::agent_config::{GameSection, ListenPort, Pattern, StopMethod, StopSignal};
use zlh_proto::api::{
    AdminTemplateView, CreateServer, ImageChoice, LimitsRequest, PortProtocol, PortSpec, PortView,
    ServerKind, TemplateOrigin, TemplateView, VariableView,
};

use variables::{Variable, VariableSpec};

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

/// A template as its file says it (TOML): what `zlh templates import` writes and the
/// templates directory holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateFile {
    /// What it runs, for people.
    pub description: String,
    /// The ports it needs, the main one first; the game gets them as `{port.<name>}` and the
    /// first as `SERVER_PORT`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortSpec>,
    /// The container image it runs in (drivers with containers; their default when none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Images an owner may pick instead, the default first (when `image` is not set).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<ImageChoice>,
    /// What its servers may use unless their owner chooses otherwise (the operator's default
    /// for what it leaves out).
    #[serde(default, skip_serializing_if = "is_default")]
    pub limits: LimitsRequest,
    /// Settings an owner may see and change, in the game's environment.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub variables: Vec<VariableSpec>,
    /// A script run once before the first start, in a container of its own with the server's
    /// files at `/mnt/server`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub install: Option<InstallStep>,
    /// The agent's `[game]` section.
    pub game: GameSection,
}

fn is_default(limits: &LimitsRequest) -> bool {
    *limits == LimitsRequest::default()
}

/// An install step: `entrypoint script` in `image`, with the server's files at `/mnt/server`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstallStep {
    /// The image it runs in.
    pub image: String,
    /// The shell that runs the script (`bash`).
    #[serde(default = "default_entrypoint")]
    pub entrypoint: String,
    /// The script.
    pub script: String,
}

fn default_entrypoint() -> String {
    "bash".into()
}

/// A template as it was read: its file, with the variables' rules compiled.
#[derive(Debug, Clone)]
struct Template {
    file: TemplateFile,
    variables: Vec<Variable>,
    origin: TemplateOrigin,
    source: String,
    replaces: Option<TemplateOrigin>,
}

impl Template {
    /// The images it offers, the default first.
    fn images(&self) -> Vec<ImageChoice> {
        let mut images = self.file.images.clone();
        if let Some(image) = &self.file.image {
            images.retain(|choice| &choice.image != image);
            images.insert(0, ImageChoice { label: "Default".into(), image: image.clone() });
        }
        images
    }

    fn view(&self, name: &str) -> TemplateView {
        let variables =
            self.variables.iter().filter(|v| v.spec.user_viewable).map(|v| v.view(&v.spec.default)).collect();
        TemplateView {
            name: name.to_owned(),
            description: self.file.description.clone(),
            images: self.images(),
            variables,
            install: self.file.install.is_some(),
            required_files: self.file.game.required_files.clone(),
        }
    }
}

impl Variable {
    /// How the API shows it, with `value`.
    pub fn view(&self, value: &str) -> VariableView {
        VariableView {
            name: self.spec.name.clone(),
            description: self.spec.description.clone(),
            env: self.spec.env.clone(),
            value: value.to_owned(),
            default: self.spec.default.clone(),
            editable: self.spec.user_editable,
            rules: self.spec.rules.clone(),
        }
    }
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
    /// Its install step.
    pub install: Option<InstallStep>,
    /// Start once created.
    pub start: bool,
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
    /// A variable's value breaks its rules.
    #[error("{0}")]
    Variable(String),
    /// A variable the owner may not set (or the template does not have).
    #[error("{0}")]
    NotEditable(String),
}

/// The variable an owner may set by `env`, or why not.
pub fn settable<'a>(variables: &'a [Variable], env: &str) -> Result<&'a Variable, TemplateError> {
    match variables.iter().find(|v| v.spec.env == env) {
        Some(v) if v.spec.user_viewable && v.spec.user_editable => Ok(v),
        Some(v) => Err(TemplateError::NotEditable(format!("{} cannot be changed by its owner", v.spec.name))),
        None => Err(TemplateError::NotEditable(format!("this server's template has no variable {env}"))),
    }
}

/// Every template, by name.
#[derive(Debug, Clone)]
pub struct TemplateCatalog {
    templates: BTreeMap<String, Template>,
    /// Built-in or directory templates an admin removed, by where they come from.
    removed: BTreeMap<String, TemplateOrigin>,
    dev_shell: Template,
}

/// Reads a template file, or says what is wrong with it.
fn parse(name: &str, text: &str) -> Result<Template, String> {
    let file: TemplateFile = toml::from_str(text).map_err(|e| format!("template {name}: {e}"))?;
    let mut template = Template::new(name, file)?;
    template.source = text.to_owned();
    Ok(template)
}

/// Whether `text` is a template an admin may keep as `name`; the reason when not.
pub fn check(name: &str, text: &str) -> Result<(), String> {
    check_name(name)?;
    if text.len() > MAX_SOURCE {
        return Err("a template file is at most 256 KiB".into());
    }
    parse(name, text).map(|_| ())
}

/// The longest template file kept.
const MAX_SOURCE: usize = 256 << 10;

/// Template names: `a-z`, `0-9` and `-`, at most 64, and never `custom`.
pub fn check_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid || name == CUSTOM {
        return Err(format!("`{name}` is not a template name (a-z, 0-9 and -, at most 64, not custom)"));
    }
    Ok(())
}

impl Template {
    fn new(name: &str, mut file: TemplateFile) -> Result<Template, String> {
        let bad = |problem: String| Err(format!("template {name}: {problem}"));
        if file.game.argv.first().is_none_or(|program| program.is_empty()) {
            return bad("game.argv must name a program".into());
        }
        let texts = file.game.argv.iter().chain(file.game.env.values());
        for text in texts {
            let mut rest = text.as_str();
            while let Some(at) = rest.find("{port.") {
                let after = &rest[at + "{port.".len()..];
                let port = after.split('}').next().unwrap_or_default();
                if !file.ports.iter().any(|p| p.name == port) {
                    return bad(format!("{{port.{port}}} names no port in its ports list"));
                }
                rest = after;
            }
        }
        if file.install.as_ref().is_some_and(|i| i.image.trim().is_empty() || i.entrypoint.trim().is_empty())
        {
            return bad("install needs an image and an entrypoint".into());
        }
        let mut variables = Vec::new();
        for spec in &file.variables {
            let variable =
                Variable::new(spec.clone(), &mut Vec::new()).map_err(|e| format!("template {name}: {e}"))?;
            if let Err(why) = variable.check(&spec.default) {
                return bad(format!("the default of {}: {why}", spec.env));
            }
            // The game gets every variable in its environment; the owner may set these.
            file.game.env.entry(spec.env.clone()).or_insert_with(|| spec.default.clone());
            file.game.variables.push(spec.env.clone());
            variables.push(variable);
        }
        Ok(Template {
            file,
            variables,
            origin: TemplateOrigin::BuiltIn,
            source: String::new(),
            replaces: None,
        })
    }

    fn admin_view(&self, name: &str, with_source: bool) -> AdminTemplateView {
        AdminTemplateView {
            name: name.to_owned(),
            description: self.file.description.clone(),
            origin: self.origin,
            replaces: self.replaces,
            removed: false,
            source: if with_source { self.source.clone() } else { String::new() },
        }
    }
}

impl TemplateCatalog {
    /// The built-in templates, those in `dir` over them (a broken file is logged and skipped),
    /// and those admins stored over both (`None`: removed).
    pub fn load(dir: Option<&Path>, stored: &[(String, Option<String>)]) -> TemplateCatalog {
        let mut templates: BTreeMap<String, Template> = BUILT_IN
            .iter()
            .map(|(name, text)| {
                ((*name).to_owned(), parse(name, text).expect("built-in templates are valid"))
            })
            .collect();
        for (name, path) in directory_files(dir) {
            match std::fs::read_to_string(&path)
                .map_err(|e| e.to_string())
                .and_then(|text| parse(&name, &text))
            {
                Ok(mut template) => {
                    template.origin = TemplateOrigin::Directory;
                    template.replaces = templates.get(&name).map(|t| t.origin);
                    templates.insert(name, template);
                }
                Err(error) => tracing::error!(path = %path.display(), %error, "template skipped"),
            }
        }
        let mut removed = BTreeMap::new();
        for (name, source) in stored {
            let replaces = templates.get(name).map(|t| t.origin);
            match source.as_deref().map(|text| parse(name, text)) {
                None => {
                    if let Some(hidden) = templates.remove(name) {
                        removed.insert(name.clone(), hidden.origin);
                    }
                }
                Some(Ok(mut template)) => {
                    template.origin = TemplateOrigin::Stored;
                    template.replaces = replaces;
                    templates.insert(name.clone(), template);
                }
                Some(Err(error)) => tracing::error!(%error, "stored template skipped"),
            }
        }
        TemplateCatalog {
            templates,
            removed,
            dev_shell: parse("dev-shell", DEV_SHELL).expect("built-in templates are valid"),
        }
    }

    /// Every template as admins see it, removed ones included, without their files.
    pub fn admin_list(&self) -> Vec<AdminTemplateView> {
        let mut list: Vec<AdminTemplateView> =
            self.templates.iter().map(|(name, t)| t.admin_view(name, false)).collect();
        list.extend(self.removed.iter().map(|(name, origin)| AdminTemplateView {
            name: name.clone(),
            description: String::new(),
            origin: TemplateOrigin::Stored,
            replaces: Some(*origin),
            removed: true,
            source: String::new(),
        }));
        list.sort_by(|a, b| a.name.cmp(&b.name));
        list
    }

    /// One template as admins see it, with its file.
    pub fn admin_view(&self, name: &str) -> Option<AdminTemplateView> {
        if let Some(template) = self.templates.get(name) {
            return Some(template.admin_view(name, true));
        }
        self.admin_list().into_iter().find(|t| t.name == name)
    }

    /// The catalog as `GET /api/templates` shows it.
    pub fn list(&self) -> Vec<TemplateView> {
        let mut list: Vec<TemplateView> = self.templates.iter().map(|(name, t)| t.view(name)).collect();
        list.push(TemplateView {
            name: CUSTOM.into(),
            description: "Your own command (`command`, optional `ready_pattern`)".into(),
            images: Vec::new(),
            variables: Vec::new(),
            install: false,
            required_files: Vec::new(),
        });
        list
    }

    /// A template's install step.
    pub fn install_step(&self, name: &str) -> Option<InstallStep> {
        self.templates.get(name).and_then(|t| t.file.install.clone())
    }

    /// A template's variables (to show and check a server's values).
    pub fn variables(&self, name: &str) -> Option<&[Variable]> {
        self.templates.get(name).map(|t| t.variables.as_slice())
    }

    /// What a create request runs, or why the request is wrong.
    pub fn plan_for(&self, request: &CreateServer) -> Result<GamePlan, TemplateError> {
        let invalid = |message: &str| Err(TemplateError::Invalid(message.to_owned()));
        if request.kind == ServerKind::Dev {
            return Ok(GamePlan {
                game: self.dev_shell.file.game.clone(),
                ports: Vec::new(),
                image: self.dev_shell.file.image.clone(),
                limits: self.dev_shell.file.limits,
                install: None,
                start: true,
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
            let images = template.images();
            let image = match request.image.as_deref() {
                None => images.first().map(|choice| choice.image.clone()),
                Some(asked) => {
                    let choice = images.iter().find(|c| c.label == asked || c.image == asked);
                    let Some(choice) = choice else {
                        return invalid(&format!("the template {name} does not offer the image {asked:?}"));
                    };
                    Some(choice.image.clone())
                }
            };
            let mut game = template.file.game.clone();
            if request.start && template.file.install.is_none() && !game.required_files.is_empty() {
                return invalid(&format!(
                    "{name} needs {} before its first start: create it without start, upload them, then start it",
                    game.required_files.join(", ")
                ));
            }
            for (env, value) in &request.variables {
                let variable = settable(&template.variables, env)?;
                variable.check(value).map_err(TemplateError::Variable)?;
                game.env.insert(env.clone(), value.clone());
            }
            return Ok(GamePlan {
                game,
                ports: template.file.ports.clone(),
                image,
                limits: template.file.limits,
                install: template.file.install.clone(),
                start: request.start,
            });
        }
        if !request.variables.is_empty() || request.image.is_some() {
            return invalid("the custom template has no variables or images");
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
            install: None,
            start: request.start,
        })
    }
}

/// The `*.toml` files of the templates directory, by template name.
fn directory_files(dir: Option<&Path>) -> Vec<(String, std::path::PathBuf)> {
    let files = dir.and_then(|dir| std::fs::read_dir(dir).ok()).into_iter().flatten().flatten();
    let mut found: Vec<(String, std::path::PathBuf)> = files
        .map(|file| file.path())
        .filter(|path| path.extension().is_some_and(|e| e == "toml"))
        .filter_map(|path| Some((path.file_stem()?.to_str()?.to_owned(), path)))
        .filter(|(name, _)| name != CUSTOM)
        .collect();
    found.sort();
    found
}

/// What the templates directory holds now: each file's name, size and modification time.
fn fingerprint(dir: Option<&Path>) -> Vec<(String, u64, Option<std::time::SystemTime>)> {
    directory_files(dir)
        .into_iter()
        .map(|(name, path)| {
            let metadata = std::fs::metadata(&path).ok();
            (name, metadata.as_ref().map_or(0, |m| m.len()), metadata.and_then(|m| m.modified().ok()))
        })
        .collect()
}

/// The catalog as it is now: read again when a file of the templates directory changes and
/// when admins change the stored templates, so neither needs a restart.
#[derive(Debug)]
pub struct Templates {
    dir: Option<std::path::PathBuf>,
    state: std::sync::RwLock<TemplatesState>,
}

#[derive(Debug)]
struct TemplatesState {
    catalog: std::sync::Arc<TemplateCatalog>,
    fingerprint: Vec<(String, u64, Option<std::time::SystemTime>)>,
    stored: Vec<(String, Option<String>)>,
}

impl Templates {
    /// The catalog of `dir` and the `stored` templates.
    pub fn new(dir: Option<std::path::PathBuf>, stored: Vec<(String, Option<String>)>) -> Templates {
        let fingerprint = fingerprint(dir.as_deref());
        let catalog = std::sync::Arc::new(TemplateCatalog::load(dir.as_deref(), &stored));
        Templates { dir, state: std::sync::RwLock::new(TemplatesState { catalog, fingerprint, stored }) }
    }

    /// The catalog, read again first if the templates directory changed.
    pub fn current(&self) -> std::sync::Arc<TemplateCatalog> {
        let now = fingerprint(self.dir.as_deref());
        {
            let state = self.state.read().unwrap_or_else(|p| p.into_inner());
            if state.fingerprint == now {
                return std::sync::Arc::clone(&state.catalog);
            }
        }
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        tracing::info!("the templates directory changed; reading it again");
        state.catalog = std::sync::Arc::new(TemplateCatalog::load(self.dir.as_deref(), &state.stored));
        state.fingerprint = now;
        std::sync::Arc::clone(&state.catalog)
    }

    /// After admins changed the stored templates.
    pub fn stored_changed(&self, stored: Vec<(String, Option<String>)>) {
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        state.fingerprint = fingerprint(self.dir.as_deref());
        state.catalog = std::sync::Arc::new(TemplateCatalog::load(self.dir.as_deref(), &stored));
        state.stored = stored;
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
        assert_eq!(template.file.ports.len(), 1);
        assert_eq!(template.file.game.start_timeout, std::time::Duration::from_secs(300));
        assert_eq!((template.images().len(), template.variables.len()), (2, 1));
        assert!(template.file.install.is_some() && template.file.game.config_files.len() == 1);
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
            start: false,
            image: None,
            variables: BTreeMap::new(),
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
        let catalog = TemplateCatalog::load(Some(dir.path()), &[]);
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
        let catalog = TemplateCatalog::load(Some(dir.path()), &[]);
        assert!(
            catalog.list().iter().all(|t| t.name != "typo"),
            "a template naming an undeclared port is refused"
        );
    }

    #[test]
    fn every_test_egg_makes_a_template_that_reads_back() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/eggs");
        for file in std::fs::read_dir(dir).expect("eggs").flatten() {
            let text = std::fs::read_to_string(file.path()).expect("egg");
            let imported = egg::Egg::parse(&text).expect("egg").to_template();
            let template = parse("egg", &imported.toml).unwrap_or_else(|e| panic!("{e}\n{}", imported.toml));
            assert!(!template.file.game.variables.is_empty(), "{}", imported.toml);
            assert!(template.file.install.is_some() && !template.images().is_empty());
        }
    }

    #[test]
    fn bad_requests_say_why() {
        let catalog = TemplateCatalog::load(None, &[]);
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
