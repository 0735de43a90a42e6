//! `zlh up`: the whole system on this machine with embedded defaults: SQLite in the data
//! directory, the in-memory status cache, the `local` driver, the API on
//! `http://127.0.0.1:8080`. The first admin's credentials are printed once (or taken from
//! `ZLH_ADMIN_EMAIL` / `ZLH_ADMIN_PASSWORD`). Restarting it keeps every user, server and agent.

use std::net::SocketAddr;
use std::path::PathBuf;

use zlh_control::config::DriverKind;

use crate::logging::{self, LogTo};

#[derive(Debug, clap::Args)]
pub(crate) struct UpArgs {
    /// Where everything is kept.
    #[arg(long, env = "ZLH_DATA_DIR", default_value = "zlh-data")]
    data_dir: PathBuf,
    /// Address of the API and portal.
    #[arg(long, env = "ZLH_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Where servers run: `local` (processes of this machine, as this user: for trying the
    /// product alone, never for customers) or `docker` (a locked-down container each).
    #[arg(long, value_enum, default_value = "local")]
    driver: Driver,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Driver {
    Local,
    Docker,
}

pub(crate) fn run(args: UpArgs) -> anyhow::Result<()> {
    logging::init(LogTo::Stdout);
    let mut config = super::serve::load_config(None)?;
    config.data_dir = args.data_dir;
    config.listen = args.listen;
    config.driver = match args.driver {
        Driver::Local => DriverKind::Local,
        Driver::Docker => DriverKind::Docker,
    };
    // The local driver isolates nothing: sign-up stays closed unless the operator opens it.
    let registration_chosen = std::env::var_os("ZLH_AUTH__ALLOW_REGISTRATION").is_some();
    let closed = config.driver == DriverKind::Local && !registration_chosen;
    if closed {
        config.auth.allow_registration = false;
    }
    super::serve::serve(config, async move |control| {
        let url = control.config().public_url();
        if control.config().driver == DriverKind::Local {
            eprintln!(
                "\nServers run on the local driver: processes of this machine, as this user, with no \
                 limits. That is for trying ZeroLagHub alone; host customers with --driver docker."
            );
        }
        if closed {
            eprintln!(
                "Sign-up is closed (admins create accounts with `zlh admin create-user`). \
                 ZLH_AUTH__ALLOW_REGISTRATION=true opens it: every account could then run code as this user."
            );
        }
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
