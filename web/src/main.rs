//! `vila2-portal`: runs the web portal, migrates its database, bootstraps admins.

use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

#[derive(Parser)]
#[command(name = "vila2-portal", about = "vila2 web portal and JSON API")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct Storage {
    /// `sqlite://PATH?mode=rwc` or `postgres://USER@HOST/DB` [default: <data-dir>/vila2.db]
    #[arg(long, env = "VILA2_DATABASE_URL")]
    database_url: Option<String>,
    /// Database file, object store, JWT secret and component cache live here.
    #[arg(long, env = "VILA2_DATA_DIR", default_value = "vila2-data")]
    data_dir: PathBuf,
    /// Database connections in the pool [default: 8]
    #[arg(long, env = "VILA2_DB_CONNECTIONS", value_parser = clap::value_parser!(u32).range(1..))]
    db_connections: Option<u32>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the portal (migrates the database first).
    Serve {
        #[command(flatten)]
        storage: Storage,
        #[arg(long, env = "VILA2_BIND", default_value = "127.0.0.1:8080")]
        bind: SocketAddr,
        /// Mark cookies Secure (when served behind HTTPS).
        #[arg(long)]
        secure_cookies: bool,
    },
    /// Apply pending database migrations.
    Migrate {
        #[command(flatten)]
        storage: Storage,
    },
    /// Administration.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create a user; the password is read from standard input.
    CreateUser {
        #[command(flatten)]
        storage: Storage,
        #[arg(long)]
        email: String,
        /// Read the password from stdin (required: passwords never go on the command line).
        #[arg(long, required = true)]
        password_stdin: bool,
        /// Make the user a platform admin.
        #[arg(long)]
        admin: bool,
        /// Succeed without changing anything when a user with this email already exists.
        #[arg(long)]
        exists_ok: bool,
    },
    /// Once: a `demo` team with this user in it and a small ShapesWorld dataset to run on.
    SeedDemo {
        #[command(flatten)]
        storage: Storage,
        #[arg(long)]
        email: String,
    },
}

fn options(storage: Storage) -> vila2_web::Options {
    vila2_web::Options {
        database_url: storage.database_url,
        bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
        data_dir: storage.data_dir,
        secure_cookies: false,
        db_connections: storage.db_connections,
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let env_filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                // No colour codes in a log file or pipe.
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
                .with_filter(env_filter),
        )
        // The pipeline's warnings also go to the log of the run being executed.
        .with(vila2_web::runs::pipeline_log::layer())
        .init();
    match Cli::parse().command {
        Command::Serve {
            storage,
            bind,
            secure_cookies,
        } => {
            let options = vila2_web::Options {
                bind,
                secure_cookies,
                ..options(storage)
            };
            vila2_web::serve(options).await?;
        }
        Command::Migrate { storage } => {
            vila2_web::migrate(&options(storage)).await?;
            println!("database is up to date");
        }
        Command::Admin {
            command: AdminCommand::SeedDemo { storage, email },
        } => match vila2_web::demo::seed_demo(&options(storage), &email).await? {
            Some(d) => println!(
                "seeded dataset {} ({} samples) in team {}",
                d.name,
                d.sample_count,
                vila2_web::demo::DEMO_TEAM
            ),
            None => println!("the demo dataset is there already: unchanged"),
        },
        Command::Admin {
            command:
                AdminCommand::CreateUser {
                    storage,
                    email,
                    password_stdin: _,
                    admin,
                    exists_ok,
                },
        } => {
            let mut password = String::new();
            std::io::stdin().read_to_string(&mut password)?;
            let password = password.trim_end_matches(['\r', '\n']);
            let options = options(storage);
            if exists_ok && let Some(user) = vila2_web::find_user(&options, &email).await? {
                println!("user {} exists (id {}): unchanged", user.email, user.id);
                return Ok(());
            }
            let user = vila2_web::create_user(&options, &email, password, admin).await?;
            println!(
                "created {}user {} (id {})",
                if user.is_admin { "admin " } else { "" },
                user.email,
                user.id
            );
        }
    }
    Ok(())
}
