//! `zlh up`: the whole system on this machine with embedded defaults: SQLite in the data
//! directory, the in-memory status cache, the `local` driver, the API on
//! `http://127.0.0.1:8080`. The first admin's credentials are printed once (or taken from
//! `ZLH_ADMIN_EMAIL` / `ZLH_ADMIN_PASSWORD`). Restarting it keeps every user, server and agent.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::logging::{self, LogTo};

#[derive(Debug, clap::Args)]
pub(crate) struct UpArgs {
    /// Where everything is kept.
    #[arg(long, env = "ZLH_DATA_DIR", default_value = "zlh-data")]
    data_dir: PathBuf,
    /// Address of the API and portal.
    #[arg(long, env = "ZLH_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
}

pub(crate) fn run(args: UpArgs) -> anyhow::Result<()> {
    logging::init(LogTo::Stdout);
    let mut config = super::serve::load_config(None)?;
    config.data_dir = args.data_dir;
    config.listen = args.listen;
    super::serve::serve(config, async move |control| {
        let url = control.config().public_url();
        let email = std::env::var("ZLH_ADMIN_EMAIL").unwrap_or_else(|_| "admin@localhost".into());
        let password = std::env::var("ZLH_ADMIN_PASSWORD").ok();
        eprintln!("\nZeroLagHub is running: open {url}/ in a browser (the API is under {url}/api)");
        if let Some((email, password)) = control.ensure_first_admin(&email, password).await? {
            eprintln!("First admin (shown only now; change the password after signing in):");
            eprintln!("  email:    {email}\n  password: {password}\n");
        }
        Ok(())
    })
}
