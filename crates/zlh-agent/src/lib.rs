//! `zlh agent`: the daemon inside each container.
//!
//! It supervises one game server through a process holder (see [`holder`]), keeps its console,
//! crash history and state, and answers the control plane over HTTP (see [`http`]). Paths are
//! resolved beneath a configurable root, so the same code runs in a container (root `/`) and in
//! tests (a temporary directory).
#![deny(unsafe_code)]

pub mod archive;
pub mod artifacts;
pub mod backup;
mod cgroup;
mod clock;
pub mod config;
pub mod config_files;
pub mod console;
pub mod dev;
pub mod disk;
mod durable;
pub mod files;
pub mod holder;
pub mod http;
pub mod jobs;
pub mod mods;
mod pipeline;
mod procfs;
mod pty;
pub mod supervisor;
pub mod variables;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::AgentConfig;
pub use supervisor::{ShutdownMode, Supervisor};

/// Runs the agent on an already-bound listener until `shutdown` resolves.
///
/// `holder_exe` is the executable whose `agent-holder` subcommand runs process holders (the
/// `zlh` binary itself). On shutdown the game is stopped first (or left running, per the
/// mode), while the API still answers; then console viewers are closed and the API drains.
pub async fn run(
    config: AgentConfig,
    listener: TcpListener,
    holder_exe: PathBuf,
    shutdown: impl Future<Output = ShutdownMode>,
) -> std::io::Result<()> {
    let config = Arc::new(config);
    let dev = dev::DevEnvironment::new(&config)?;
    let variables = Arc::new(variables::Variables::load(config.state_path(), &config.game));
    let plan: Arc<dyn supervisor::LaunchPlan> = match &dev {
        Some(dev) => Arc::clone(dev) as Arc<dyn supervisor::LaunchPlan>,
        None => Arc::new(supervisor::GameLaunch::new(&config, Arc::clone(&variables))),
    };
    // An interrupted restore is finished or rolled back before anything runs.
    let backups = Arc::new(backup::Backups::new(&config)?);
    let recovery = backups.recover();
    let supervisor = Supervisor::launch(Arc::clone(&config), holder_exe, plan, dev.is_some()).await?;
    if recovery.start_game {
        let _ = supervisor.start().await;
    }
    if recovery.resume_saving {
        backups.resume_saving(&supervisor).await;
    }
    let jobs = Arc::new(jobs::Jobs::default());
    if let Some(dev) = &dev {
        let (dev, supervisor) = (Arc::clone(dev), supervisor.clone());
        jobs.spawn(zlh_proto::agent::JobKind::Provision, "dev container", move |progress| async move {
            let outcome = dev.provision(&progress).await;
            supervisor.provisioned(outcome.as_ref().err().map(ToString::to_string)).await;
            outcome
        });
    }
    // A dev container's files are its workspace, and what is uploaded there belongs to its user.
    let files = match &dev {
        Some(dev) => files::Files::open(dev.workspace(), config.files.max_upload_bytes)?.owned_by(dev.ids()),
        None => files::Files::open(&config.server_root(), config.files.max_upload_bytes)?
            .denying(&config.game.file_denylist),
    };
    let counted = vec![files.root_path().to_owned(), config.under_root(&config.backups.dir)];
    let files = Arc::new(files.on(Arc::new(disk::Disk::new(config.disk, counted))));
    let sweeping = Arc::clone(&files);
    tokio::task::spawn_blocking(move || sweeping.sweep());
    let mods = Arc::new(mods::Mods::new(&config.game.mods_dir));
    let close_viewers = CancellationToken::new();
    let app = http::router(http::AppState {
        supervisor: supervisor.clone(),
        config,
        dev,
        jobs,
        files,
        backups,
        mods,
        variables,
        started: Instant::now(),
        shutdown: close_viewers.clone(),
    });
    let address = listener.local_addr()?;
    tracing::info!(%address, "agent listening");
    let stop_http = CancellationToken::new();
    let server = tokio::spawn(
        axum::serve(listener, app).with_graceful_shutdown(stop_http.clone().cancelled_owned()).into_future(),
    );
    let mode = shutdown.await;
    tracing::info!(?mode, "agent shutting down");
    supervisor.shutdown(mode).await;
    close_viewers.cancel();
    stop_http.cancel();
    server.await.map_err(std::io::Error::other)??;
    tracing::info!("agent stopped");
    Ok(())
}
