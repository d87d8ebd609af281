//! `ghostbridge-snapshotter`: the 1-second BTRFS snapshot chain daemon and its tools.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use ghostbridge::runtime::config::{self, check_config_command};
use ghostbridge::runtime::duration::HumanDuration;
use ghostbridge::runtime::exit::{self, UsageError};
use ghostbridge::runtime::signals::Stop;
use ghostbridge::snapshot::config::Config;
use ghostbridge::snapshot::daemon::{self, Settings};
use ghostbridge::snapshot::report;

/// Read-only BTRFS snapshots of a subvolume on a fixed interval, recorded as a
/// SHA-256 hash chain in SQLite, with old snapshots pruned and their blocks kept.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon (recovery first, then one snapshot per interval).
    Run {
        /// The JSON config (as written by the NixOS module); flags below override it.
        #[arg(long)]
        config: Option<PathBuf>,
        /// The BTRFS subvolume to snapshot.
        #[arg(long)]
        source: Option<PathBuf>,
        /// The directory (on the same BTRFS filesystem) that holds the snapshots.
        #[arg(long)]
        snapshot_dir: Option<PathBuf>,
        /// The SQLite chain database.
        #[arg(long = "database", visible_alias = "db", value_name = "FILE")]
        database: Option<PathBuf>,
        /// Time between snapshots, e.g. 1s or 20ms.
        #[arg(long)]
        interval: Option<HumanDuration>,
        /// How long snapshots are kept, e.g. 1m.
        #[arg(long)]
        retention: Option<HumanDuration>,
        /// node exporter textfile directory for metrics.
        #[arg(long)]
        metrics_dir: Option<PathBuf>,
        /// Do not serve D-Bus, whatever the config says.
        #[arg(long)]
        no_dbus: bool,
    },
    /// Recompute the whole chain; exit 0 when valid, 1 with the first bad height.
    Verify {
        /// The SQLite chain database.
        #[arg(long = "database", visible_alias = "db", value_name = "FILE")]
        database: PathBuf,
    },
    /// Show recent blocks: height, time, snapshot, kept or pruned, hash.
    List {
        /// The SQLite chain database.
        #[arg(long = "database", visible_alias = "db", value_name = "FILE")]
        database: PathBuf,
        /// How many blocks.
        #[arg(short = 'n', default_value_t = 20)]
        n: u32,
    },
    /// Show the head, its lag, snapshots on disk and the last fault.
    Status {
        #[arg(long)]
        config: PathBuf,
    },
    /// Validate a config file without touching what it names; exit 0 valid,
    /// 1 unreadable, 2 invalid (the NixOS module runs it at build time).
    CheckConfig {
        /// The JSON config.
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    match real_main() {
        Ok(code) => code,
        Err(e) => exit::report("ghostbridge-snapshotter", &e),
    }
}

fn real_main() -> anyhow::Result<ExitCode> {
    match Cli::parse().command {
        Command::Run { config, source, snapshot_dir, database, interval, retention, metrics_dir, no_dbus } => {
            let mut c = match &config {
                Some(path) => config::load_unvalidated::<Config>(path)?,
                None => {
                    let (Some(source), Some(snapshot_dir), Some(database)) =
                        (source.clone(), snapshot_dir.clone(), database.clone())
                    else {
                        return Err(UsageError(
                            "without --config, give --source, --snapshot-dir and --database".into(),
                        )
                        .into());
                    };
                    Config { dbus: false, ..Config::new(source, snapshot_dir, database) }
                }
            };
            if let Some(v) = source {
                c.source = v;
            }
            if let Some(v) = snapshot_dir {
                c.snapshot_dir = v;
            }
            if let Some(v) = database {
                c.database = v;
            }
            if let Some(v) = interval {
                c.interval = v;
            }
            if let Some(v) = retention {
                c.retention = v;
            }
            if let Some(v) = metrics_dir {
                c.metrics_dir = Some(v);
            }
            if no_dbus {
                c.dbus = false;
            }
            let origin = config.unwrap_or_else(|| PathBuf::from("(command line)"));
            config::check(&c, &origin)?;
            let stop = Stop::install().context("cannot install the SIGTERM/SIGINT handlers")?;
            daemon::run(Settings::from(c), &stop)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify { database: db } => {
            let v = report::verify(&db).with_context(|| format!("cannot verify {}", db.display()))?;
            if v.ok() {
                println!("{}", v.message());
                Ok(ExitCode::SUCCESS)
            } else {
                println!("{}", v.message());
                Ok(ExitCode::from(1))
            }
        }
        Command::List { database: db, n } => {
            print!("{}", report::list(&db, n)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { config } => {
            let c = Config::load(&config)?;
            print!("{}", report::status(&c)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::CheckConfig { file } => Ok(check_config_command::<Config>(&file)),
    }
}
