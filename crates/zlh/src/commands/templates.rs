//! `zlh templates ...`: game templates in the control plane's templates directory.

use std::path::PathBuf;

use anyhow::{Context, bail};
use zlh_control::templates::egg::Egg;

#[derive(Debug, clap::Args)]
pub(crate) struct TemplatesArgs {
    #[command(flatten)]
    data: super::serve::DataArgs,
    #[command(subcommand)]
    command: TemplatesCommand,
}

#[derive(Debug, clap::Subcommand)]
enum TemplatesCommand {
    /// Makes a template of a Pterodactyl or Pelican egg (JSON or YAML) and says what of the egg
    /// it does not carry out. The control plane reads it when it starts.
    Import {
        /// The egg file.
        file: PathBuf,
        /// The template's name (default: made from the egg's name).
        #[arg(long)]
        name: Option<String>,
    },
}

/// A template name from an egg's: lower case, letters and digits joined by dashes.
fn name_of(egg: &str) -> String {
    let words: Vec<String> = egg
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
        .collect();
    words.join("-")
}

pub(crate) fn run(args: TemplatesArgs) -> anyhow::Result<()> {
    let config = args.data.load()?;
    match args.command {
        TemplatesCommand::Import { file, name } => {
            let text =
                std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let egg = Egg::parse(&text)?;
            let name = name.unwrap_or_else(|| name_of(&egg.name));
            let valid = !name.is_empty()
                && name.len() <= 64
                && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if !valid {
                bail!("`{name}` is not a template name (a-z, 0-9 and -, at most 64)");
            }
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
            println!("The control plane reads it when it starts.");
        }
    }
    Ok(())
}
