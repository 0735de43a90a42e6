//! `zlh serve [--config FILE]`: the control plane for operators (TOML + `ZLH_*` overrides).

use std::path::{Path, PathBuf};

use anyhow::Context;
use tokio::signal::unix::{SignalKind, signal};
use zlh_control::ControlConfig;

use crate::logging::{self, LogTo};

#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// The control plane's TOML configuration; without one, embedded defaults apply.
    #[arg(long)]
    config: Option<PathBuf>,
}

/// Reads the configuration file (if any) and applies `ZLH_*` overrides.
/// Where a command finds a control plane's data: its configuration file, or the data directory
/// given to `zlh up --data-dir` (which wins over the file's).
#[derive(Debug, clap::Args)]
pub(crate) struct DataArgs {
    /// The control plane's configuration file.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// The control plane's data directory, as given to `zlh up --data-dir`.
    #[arg(long, global = true, env = "ZLH_DATA_DIR")]
    data_dir: Option<PathBuf>,
}

impl DataArgs {
    /// The configuration these arguments name.
    pub(crate) fn load(&self) -> anyhow::Result<ControlConfig> {
        let mut config = load_config(self.config.as_deref())?;
        if let Some(data_dir) = &self.data_dir {
            config.data_dir.clone_from(data_dir);
        }
        Ok(config)
    }
}

pub(crate) fn load_config(path: Option<&Path>) -> anyhow::Result<ControlConfig> {
    let text = match path {
        Some(path) => {
            std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?
        }
        None => String::new(),
    };
    Ok(ControlConfig::load(&text, std::env::vars())?)
}

pub(crate) fn run(args: ServeArgs) -> anyhow::Result<()> {
    logging::init(LogTo::Stdout);
    let config = load_config(args.config.as_deref())?;
    serve(config, async |_| Ok(()))
}

/// Runs the control plane until SIGTERM or SIGINT. `on_open` runs once the data directory
/// is open (to create the first admin) and before the API listens.
pub(crate) fn serve(
    mut config: ControlConfig,
    on_open: impl AsyncFnOnce(&zlh_control::ControlPlane) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        raise_open_file_limit();
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        // With port 0, the public URL is only known now.
        if config.public_url.is_none() {
            config.public_url = Some(format!("http://{}", listener.local_addr()?));
        }
        let exe = std::env::current_exe().context("cannot find the zlh executable")?;
        let control = zlh_control::ControlPlane::open(config, exe).await?;
        on_open(&control).await?;
        // Handlers are installed now, not when the server first polls `shutdown`: a SIGTERM
        // that arrives as soon as the API answers must still be a graceful stop.
        let (mut terminate, mut interrupt) =
            (signal(SignalKind::terminate())?, signal(SignalKind::interrupt())?);
        let shutdown = async move {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = interrupt.recv() => {}
            }
        };
        zlh_control::run(control, listener, shutdown).await?;
        Ok(())
    })
}

/// A control plane keeps a connection to every agent: lift the soft limit on open files to the
/// hard one (1024 by default would cap it near a thousand servers).
fn raise_open_file_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        let _ = setrlimit(Resource::Nofile, limit);
    }
}
