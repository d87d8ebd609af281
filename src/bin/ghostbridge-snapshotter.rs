//! `ghostbridge-snapshotter`: the 1-second BTRFS snapshot chain daemon and its tools.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use ghostbridge::runtime::config::{self, check_config_command};
use ghostbridge::runtime::duration::HumanDuration;
use ghostbridge::runtime::exit::{self, UsageError};
use ghostbridge::runtime::signals::Stop;
use ghostbridge::snapshot::clock;
use ghostbridge::snapshot::config::Config;
use ghostbridge::snapshot::daemon::{self, Settings};
use ghostbridge::snapshot::history::{self, HistoryError};
use ghostbridge::snapshot::report;
use ghostbridge::snapshot::store::Store;
use ghostbridge::vectors::{QdrantClient, SyncConfig, witness};

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
        /// Do not record what each block changed, whatever the config says.
        #[arg(long)]
        no_index_changes: bool,
    },
    /// Recompute the whole chain; exit 0 when valid, 1 with the first bad height.
    Verify {
        /// The SQLite chain database.
        #[arg(long = "database", visible_alias = "db", value_name = "FILE")]
        database: PathBuf,
        /// Also compare with the Qdrant mirror named by this Qdrant sync
        /// config: finds deleted newest blocks and a rewritten chain.
        #[arg(long, value_name = "QDRANT_SYNC_CONFIG")]
        against_qdrant: Option<PathBuf>,
        /// Also check every block's MAC under the key in this file (the
        /// daemon's `hmac_key_file`): a chain rewritten without it fails.
        #[arg(long, value_name = "FILE")]
        hmac_key: Option<PathBuf>,
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
    /// Every block that changed PATH or anything below it, oldest first.
    Changes {
        /// A path inside the snapshotted subvolume (`/etc/nginx`), or below its mount point.
        #[arg(value_parser = clap::value_parser!(std::ffi::OsString))]
        path: std::ffi::OsString,
        /// Only blocks since then: "2h", "10 minutes ago", "2026-12-03T10:00:00Z" or "@<unix seconds>".
        #[arg(long)]
        since: Option<String>,
        /// The SQLite chain database.
        #[arg(long = "database", visible_alias = "db", value_name = "FILE")]
        database: PathBuf,
    },
    /// What changed between two blocks, given as heights or times.
    Diff {
        /// A height, or a time (the newest block at or before it).
        from: String,
        /// A height, or a time.
        to: String,
        /// The SQLite chain database.
        #[arg(long = "database", visible_alias = "db", value_name = "FILE")]
        database: PathBuf,
    },
    /// The timeline: one line per block with its change count.
    Log {
        /// From this time on (default: the newest -n blocks).
        #[arg(long)]
        since: Option<String>,
        /// How many blocks without --since.
        #[arg(short = 'n', default_value_t = 50)]
        n: u32,
        /// The SQLite chain database.
        #[arg(long = "database", visible_alias = "db", value_name = "FILE")]
        database: PathBuf,
    },
    /// Copy PATH as it was at a time back into the source, or into --to.
    Restore {
        /// A path inside the snapshotted subvolume.
        #[arg(value_parser = clap::value_parser!(std::ffi::OsString))]
        path: std::ffi::OsString,
        /// When: "10 minutes ago", "2026-12-03T10:00:00Z", "@<unix seconds>".
        #[arg(long)]
        at: String,
        /// Copy into this existing folder instead of replacing the path in the source.
        #[arg(long)]
        to: Option<PathBuf>,
        /// The daemon's JSON config (source, snapshot folder, database).
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

/// Opens the chain database read-only, naming it in the error.
fn open(database: &std::path::Path) -> anyhow::Result<Store> {
    Store::open_reader(database).with_context(|| format!("cannot read {}", database.display()))
}

/// The bytes of a key file (all of them: a key may be binary); an empty one is refused.
fn read_key(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    let key = std::fs::read(path).with_context(|| format!("cannot read the key file {}", path.display()))?;
    if key.is_empty() {
        anyhow::bail!("the key file {} is empty: write a key into it (e.g. 32 bytes of /dev/urandom)", path.display());
    }
    Ok(key)
}

/// A malformed time, point or path is a usage error (exit 2).
fn usage(e: HistoryError) -> anyhow::Error {
    if e.is_usage() { UsageError(e.to_string()).into() } else { e.into() }
}

fn main() -> ExitCode {
    match real_main() {
        Ok(code) => code,
        Err(e) => exit::report("ghostbridge-snapshotter", &e),
    }
}

fn real_main() -> anyhow::Result<ExitCode> {
    match Cli::parse().command {
        Command::Run {
            config,
            source,
            snapshot_dir,
            database,
            interval,
            retention,
            metrics_dir,
            no_dbus,
            no_index_changes,
        } => {
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
            if no_index_changes {
                c.index_changes = false;
            }
            let origin = config.unwrap_or_else(|| PathBuf::from("(command line)"));
            config::check(&c, &origin)?;
            let key = c.hmac_key_file.as_deref().map(read_key).transpose()?;
            let stop = Stop::install().context("cannot install the SIGTERM/SIGINT handlers")?;
            let mut settings = Settings::from(c);
            settings.hmac_key = key.map(Into::into);
            daemon::run(settings, &stop)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify { database: db, against_qdrant, hmac_key } => {
            let key = hmac_key.as_deref().map(read_key).transpose()?;
            let v = report::verify(&db, key.as_deref()).with_context(|| format!("cannot verify {}", db.display()))?;
            println!("{}", v.message());
            let mut ok = v.ok();
            if let Some(file) = against_qdrant {
                let cfg = SyncConfig::load(&file)?;
                let client = QdrantClient::new(&cfg.url, cfg.api_key()?, cfg.request_timeout.as_duration());
                let store = open(&db)?;
                let t = witness::compare(&store, &client, &cfg.collection)?;
                println!("{}", t.message());
                ok &= t.ok();
            }
            Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
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
        Command::Changes { path, since, database } => {
            let store = open(&database)?;
            let now = clock::realtime_ns();
            let since = since.map(|s| history::parse_when(&s, now)).transpose().map_err(usage)?;
            let path = history::parse_path(&path, None).map_err(usage)?;
            print!("{}", history::changes_text(&history::changes(&store, &path, since)?));
            Ok(ExitCode::SUCCESS)
        }
        Command::Diff { from, to, database } => {
            let store = open(&database)?;
            let now = clock::realtime_ns();
            let from = history::resolve_point(&store, &from, now).map_err(usage)?;
            let to = history::resolve_point(&store, &to, now).map_err(usage)?;
            print!("{}", history::diff_text(&history::diff(&store, from, to)?));
            Ok(ExitCode::SUCCESS)
        }
        Command::Log { since, n, database } => {
            let store = open(&database)?;
            let since = since.map(|s| history::parse_when(&s, clock::realtime_ns())).transpose().map_err(usage)?;
            print!("{}", history::log_text(&history::timeline(&store, since, n)?));
            Ok(ExitCode::SUCCESS)
        }
        Command::Restore { path, at, to, config } => {
            let c = Config::load(&config)?;
            let store = open(&c.database)?;
            let at = history::parse_when(&at, clock::realtime_ns()).map_err(usage)?;
            let path = history::parse_path(&path, Some(&c.source)).map_err(usage)?;
            let target = match &to {
                Some(dir) => history::Target::Folder(dir),
                None => history::Target::InPlace { source: &c.source },
            };
            let done = history::restore(&store, &c.snapshot_dir, &path, at, target)?;
            for notice in &done.notices {
                eprintln!("ghostbridge-snapshotter: {notice}");
            }
            if let Some(aside) = &done.replaced {
                eprintln!("ghostbridge-snapshotter: what was there is kept at {}", aside.display());
            }
            println!(
                "restored {} from block {} ({}) to {}",
                history::show(&path),
                done.from_block.height,
                report::utc(done.from_block.time_ns),
                done.to.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
