//! `zlh artifacts ...`: maintain the artifact catalog the control plane serves to agents.

use std::path::PathBuf;

use zlh_control::artifacts::ArtifactStore;
use zlh_proto::catalog::Kind;

#[derive(Debug, clap::Args)]
pub(crate) struct ArtifactsArgs {
    #[command(flatten)]
    data: super::serve::DataArgs,
    #[command(subcommand)]
    command: ArtifactsCommand,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum KindArg {
    Runtime,
    Addon,
    Mod,
}

impl From<KindArg> for Kind {
    fn from(kind: KindArg) -> Kind {
        match kind {
            KindArg::Runtime => Kind::Runtime,
            KindArg::Addon => Kind::Addon,
            KindArg::Mod => Kind::Mod,
        }
    }
}

/// Which artifact: `--kind K --name N --version V`.
#[derive(Debug, clap::Args)]
struct Which {
    #[arg(long, value_enum)]
    kind: KindArg,
    #[arg(long)]
    name: String,
    #[arg(long)]
    version: String,
}

#[derive(Debug, clap::Subcommand)]
enum ArtifactsCommand {
    /// Copies a .tar.gz into the store and lists it (its SHA-256 and size are computed).
    Add {
        #[command(flatten)]
        which: Which,
        /// The .tar.gz to add.
        file: PathBuf,
    },
    /// Prints the catalog.
    List,
    /// Removes a version and its file.
    Remove {
        #[command(flatten)]
        which: Which,
    },
}

pub(crate) fn run(args: ArtifactsArgs) -> anyhow::Result<()> {
    let config = args.data.load()?;
    let store = ArtifactStore::new(config.data_dir.join("artifacts"));
    match args.command {
        ArtifactsCommand::Add { which: Which { kind, name, version }, file } => {
            let artifact = store.add(kind.into(), &name, &version, &file)?;
            println!("added {name} {version}: {} bytes, sha256 {}", artifact.size, artifact.sha256);
        }
        ArtifactsCommand::List => {
            let catalog = store.catalog()?;
            println!("{}", serde_json::to_string_pretty(&catalog)?);
        }
        ArtifactsCommand::Remove { which: Which { kind, name, version } } => {
            store.remove(kind.into(), &name, &version)?;
            println!("removed {name} {version}");
        }
    }
    Ok(())
}
