//! `zlh up`: everything on this machine with embedded defaults.
//!
//! For now "everything" is one agent supervising the sample game; the control plane and portal
//! join it as they are built. The agent's configuration is written once into the data directory
//! (with a fresh secret) and reused afterwards, so a restart finds its server again.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use zlh_agent::AgentConfig;

use crate::logging::{self, LogTo};

#[derive(Debug, clap::Args)]
pub(crate) struct UpArgs {
    /// Where everything is kept.
    #[arg(long, env = "ZLH_DATA_DIR", default_value = "zlh-data")]
    data_dir: PathBuf,
    /// Address of the API.
    #[arg(long, env = "ZLH_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
}

pub(crate) fn run(args: UpArgs) -> anyhow::Result<()> {
    logging::init(LogTo::Stdout);
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create {}", args.data_dir.display()))?;
    let data_dir = args.data_dir.canonicalize()?;
    let config_path = data_dir.join("sample-agent.toml");
    if !config_path.exists() {
        write_sample_config(&config_path, &data_dir)?;
    }
    let text = std::fs::read_to_string(&config_path)?;
    let mut config = AgentConfig::load(&text, std::env::vars())?;
    config.listen = args.listen;
    eprintln!(
        "ZeroLagHub: an agent supervising the sample game server at http://{}\n  \
         its secret is in {}\n  \
         try: curl -H \"Authorization: Bearer $(sed -n 's/^secret = \"\\(.*\\)\"/\\1/p' {})\" http://{}/status",
        args.listen,
        config_path.display(),
        config_path.display(),
        args.listen,
    );
    super::agent::serve(config)
}

fn write_sample_config(path: &Path, data_dir: &Path) -> anyhow::Result<()> {
    let mut secret = [0u8; 24];
    getrandom::fill(&mut secret).map_err(|e| anyhow::anyhow!("no randomness available: {e}"))?;
    let secret: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    let exe = std::env::current_exe()?;
    let quote = |text: &str| serde_json::to_string(text);
    let text = format!(
        "# The sample game server of `zlh up`. Edit freely; ZLH_AGENT_* variables override keys.\n\
         secret = {secret}\n\
         root = {root}\n\
         \n\
         [game]\n\
         argv = [{exe}, \"sample-game\"]\n\
         ready_pattern = 'Done \\('\n\
         autostart = true\n",
        secret = quote(&secret)?,
        root = quote(&data_dir.join("sample-server").display().to_string())?,
        exe = quote(&exe.display().to_string())?,
    );
    std::fs::write(path, text)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(())
}
