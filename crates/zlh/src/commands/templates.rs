//! `zlh templates ...`: game templates in the control plane's templates directory.

use anyhow::Context;
use zlh_control::templates::{self, egg, egg::Egg};

#[derive(Debug, clap::Args)]
pub(crate) struct TemplatesArgs {
    #[command(flatten)]
    data: super::serve::DataArgs,
    #[command(subcommand)]
    command: TemplatesCommand,
}

#[derive(Debug, clap::Subcommand)]
enum TemplatesCommand {
    /// Makes a template of a Pterodactyl or Pelican egg (JSON or YAML) in the templates
    /// directory and says what of the egg it does not carry out. A running control plane
    /// offers it at once.
    Import {
        /// The egg file, or an http(s) URL to fetch it from.
        file: String,
        /// The template's name (default: made from the egg's name).
        #[arg(long)]
        name: Option<String>,
    },
}

pub(crate) fn run(args: TemplatesArgs) -> anyhow::Result<()> {
    let config = args.data.load()?;
    match args.command {
        TemplatesCommand::Import { file, name } => {
            let text = if file.starts_with("http://") || file.starts_with("https://") {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                runtime.block_on(egg::fetch(&file)).map_err(anyhow::Error::msg)?
            } else {
                std::fs::read_to_string(&file).with_context(|| format!("cannot read {file}"))?
            };
            let egg = Egg::parse(&text)?;
            let name = name.unwrap_or_else(|| egg::name_of(&egg.name));
            templates::check_name(&name).map_err(anyhow::Error::msg)?;
            let dir = config.templates_dir();
            std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
            let path = dir.join(format!("{name}.toml"));
            let imported = egg.to_template();
            let mut target =
                std::fs::OpenOptions::new().write(true).create_new(true).open(&path).with_context(|| {
                    format!("cannot write {} (is there a template of that name?)", path.display())
                })?;
            std::io::Write::write_all(&mut target, imported.toml.as_bytes())?;
            println!("imported {} as the template {name} ({})", egg.name, path.display());
            for note in &imported.notes {
                println!("  not carried out: {note}");
            }
            println!("A running control plane offers it at once.");
        }
    }
    Ok(())
}
