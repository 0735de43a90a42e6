//! `zlh admin ...`: account maintenance and migrations straight on the control plane's
//! database (opening it applies pending migrations).

use std::io::BufRead;

use anyhow::{Context, bail};
use zlh_control::auth::passwords;
use zlh_control::db::StoreError;
use zlh_proto::api::Role;

#[derive(Debug, clap::Args)]
pub(crate) struct AdminArgs {
    #[command(flatten)]
    data: super::serve::DataArgs,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Debug, clap::Subcommand)]
enum AdminCommand {
    /// Creates a user (an admin with --admin). Reads the password from stdin with
    /// --password-stdin, or generates one and prints it.
    CreateUser {
        #[arg(long)]
        email: String,
        #[arg(long)]
        admin: bool,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Sets a user's password (ending all their sessions): from stdin with --password-stdin,
    /// or a generated one that is printed.
    ResetPassword {
        #[arg(long)]
        email: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Turns a user's two-factor sign-in off (a lost phone and lost recovery codes); they sign
    /// in with the password and set it up again.
    ResetTwoFactor {
        #[arg(long)]
        email: String,
    },
    /// Applies the migrations this version has and the database lacks (SQLite or PostgreSQL;
    /// `zlh serve` does the same at start), then says so.
    Migrate,
    /// Copies this host's SQLite database into an empty PostgreSQL database (every table, in
    /// one transaction, checked by counts and SHA-256); then set `database_url` to it. The URL
    /// holds a password: give it in ZLH_EXPORT_TO rather than on the command line.
    Export {
        #[arg(long, env = "ZLH_EXPORT_TO", hide_env_values = true)]
        to: String,
    },
    /// Fills this host's (empty) PostgreSQL database from a SQLite one, as `export` does from
    /// the other side.
    Import {
        #[arg(long)]
        from: std::path::PathBuf,
    },
}

/// Copies a SQLite database into an empty PostgreSQL one and prints what was copied.
async fn transfer(sqlite: &str, postgres: &str) -> anyhow::Result<()> {
    if !zlh_control::db::is_postgres(postgres) {
        bail!("the target must be a PostgreSQL database (postgres://…)");
    }
    if zlh_control::db::is_postgres(sqlite) {
        bail!("the source must be a SQLite database");
    }
    let copied = zlh_control::db::transfer::sqlite_to_postgres(sqlite, postgres).await?;
    for table in &copied {
        println!("{:<24} {:>8} rows  sha256 {}", table.table, table.rows, table.sha256);
    }
    let rows: usize = copied.iter().map(|t| t.rows).sum();
    println!("copied {} tables, {rows} rows; every count and checksum read back the same", copied.len());
    Ok(())
}

fn password(from_stdin: bool) -> anyhow::Result<(String, bool)> {
    if !from_stdin {
        return Ok((zlh_control::auth::random_token(15), true));
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    if let Some(reason) = passwords::weakness(&password, &[]) {
        bail!("{reason}");
    }
    Ok((password, false))
}

pub(crate) fn run(args: AdminArgs) -> anyhow::Result<()> {
    let config = args.data.load()?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        std::fs::create_dir_all(&config.data_dir)?;
        let database_url = config.database_url();
        match &args.command {
            AdminCommand::Export { to } => return transfer(database_url.expose(), to).await,
            AdminCommand::Import { from } => {
                if !from.is_file() {
                    bail!("there is no SQLite database at {}", from.display());
                }
                let from = format!("sqlite://{}", from.display());
                return transfer(&from, database_url.expose()).await;
            }
            _ => {}
        }
        let store =
            zlh_control::db::open(&config.database_url()).await.context("cannot open the database")?;
        match args.command {
            AdminCommand::CreateUser { email, admin, password_stdin } => {
                let (password, generated) = password(password_stdin)?;
                let role = if admin { Role::Admin } else { Role::User };
                let hash = passwords::hash(&password).await;
                match store
                    .create_user(&email.trim().to_lowercase(), &hash, role, true, zlh_proto::time::now_ms())
                    .await
                {
                    Ok(user) => {
                        println!("created user {} ({}) with id {}", user.email, role.as_str(), user.id);
                        if generated {
                            store.mark_password_generated(user.id).await?;
                            println!("password: {password}");
                        }
                    }
                    Err(StoreError::Conflict) => bail!("a user with the email {email} exists"),
                    Err(e) => return Err(e.into()),
                }
            }
            AdminCommand::ResetPassword { email, password_stdin } => {
                let Some(user) = store.user_by_email(&email.trim().to_lowercase()).await? else {
                    bail!("there is no user with the email {email}");
                };
                let (password, generated) = password(password_stdin)?;
                let hash = passwords::hash(&password).await;
                store.set_password(user.id, &hash, zlh_proto::time::now_ms()).await?;
                println!("password of {} replaced; every session of the user ended", user.email);
                if generated {
                    // Printed here: its owner is asked for one of their own.
                    store.mark_password_generated(user.id).await?;
                    println!("password: {password}");
                }
            }
            AdminCommand::Migrate => println!("the database has every migration of this version"),
            AdminCommand::Export { .. } | AdminCommand::Import { .. } => {}
            AdminCommand::ResetTwoFactor { email } => {
                let Some(user) = store.user_by_email(&email.trim().to_lowercase()).await? else {
                    bail!("there is no user with the email {email}");
                };
                store.disable_totp(user.id).await?;
                println!("two-factor sign-in of {} turned off", user.email);
            }
        }
        Ok(())
    })
}
