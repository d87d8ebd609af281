//! `ghostbridge-qdrant-sync`: mirrors the snapshot chain into a Qdrant collection.
//! Logic lives in `ghostbridge::vectors`; this is the command line.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use ghostbridge::runtime::config::{self, check_config_command};
use ghostbridge::runtime::exit::{self, UsageError};
use ghostbridge::runtime::notify;
use ghostbridge::runtime::signals::Stop;
use ghostbridge::vectors::status::{format_hit, search, status};
use ghostbridge::vectors::{FeatureHashEmbedder, QdrantClient, SyncConfig, Syncer};

/// Mirror every block of the GhostBridge snapshot chain into Qdrant, once,
/// within about a second of the snapshotter writing it.
///
/// The chain database is only read (the sync keeps its own cursor and an index in it);
/// points are upserted in batches with wait=true and the cursor advances only
/// after Qdrant acknowledged, so a crash or an outage loses and duplicates nothing.
#[derive(Parser)]
#[command(version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a config file without touching what it names; exit 0 valid,
    /// 1 unreadable, 2 invalid (the NixOS module runs it at build time).
    CheckConfig {
        /// The JSON config.
        file: PathBuf,
    },
    /// The daemon: sync every `interval` until stopped (SIGTERM/SIGINT).
    Run(Common),
    /// Sync what is pending, then exit (exit 1 if Qdrant cannot take it now).
    Once(Common),
    /// Show the cursor, pending blocks, whether Qdrant answers and the collection's shape.
    /// Exit 1 when Qdrant is unreachable or the collection has the wrong shape.
    Status(Common),
    /// The blocks nearest to TEXT, through the same embedder. Terms with a colon
    /// match block features exactly, e.g. `hour:05`, `date:2026-11-24`; `pruned:true` or
    /// `pruned:false` keeps only pruned or unpruned blocks;
    /// other terms match snapshot names and their words.
    Search {
        #[command(flatten)]
        common: Common,
        /// What to look for.
        text: String,
        /// How many blocks to show.
        #[arg(short = 'n', long = "limit", default_value_t = 10)]
        limit: usize,
    },
}

#[derive(Args)]
struct Common {
    /// The JSON config written by the NixOS module (see the README for every key).
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// The chain database (overrides `database`).
    #[arg(long = "database", visible_alias = "db", value_name = "PATH")]
    database: Option<PathBuf>,
    /// Qdrant's REST URL (overrides `url`).
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// The collection (overrides `collection`).
    #[arg(long, value_name = "NAME")]
    collection: Option<String>,
}

impl Common {
    fn load(&self) -> Result<SyncConfig> {
        let mut cfg = match (&self.config, &self.database) {
            (Some(path), _) => SyncConfig::load(path)?,
            (None, Some(db)) => SyncConfig::with_database(db),
            (None, None) => return Err(UsageError("give --config FILE, or at least --database PATH".into()).into()),
        };
        if let Some(db) = &self.database {
            cfg.database = db.clone();
        }
        if let Some(url) = &self.url {
            cfg.url = url.clone();
        }
        if let Some(collection) = &self.collection {
            cfg.collection = collection.clone();
        }
        let origin = self.config.clone().unwrap_or_else(|| PathBuf::from("(command line)"));
        config::check(&cfg, &origin)?;
        Ok(cfg)
    }
}

fn client(cfg: &SyncConfig) -> Result<QdrantClient> {
    Ok(QdrantClient::new(&cfg.url, cfg.api_key()?, cfg.request_timeout.as_duration()))
}

fn syncer(cfg: SyncConfig) -> Result<Syncer> {
    let client = client(&cfg)?;
    let embedder = Box::new(FeatureHashEmbedder::new(cfg.dimension));
    Ok(Syncer::new(cfg, client, embedder)?)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match execute(cli) {
        Ok(code) => code,
        Err(e) => exit::report("ghostbridge-qdrant-sync", &e),
    }
}

fn execute(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::CheckConfig { file } => return Ok(check_config_command::<SyncConfig>(&file)),
        Command::Run(common) => {
            let stop = Stop::install().context("cannot install the SIGTERM/SIGINT handlers")?;
            let mut syncer = syncer(common.load()?)?;
            notify::ready();
            let result = syncer.run(stop.flag());
            notify::stopping();
            result?;
        }
        Command::Once(common) => {
            let report = syncer(common.load()?)?.once()?;
            println!(
                "sent {} blocks in {} requests ({} pruned flags); cursor at {}",
                report.upserted, report.requests, report.pruned_flags, report.cursor
            );
        }
        Command::Status(common) => {
            let cfg = common.load()?;
            let st = status(&cfg, &client(&cfg)?)?;
            print!("{st}");
            if !st.healthy() {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Search { common, text, limit } => {
            let cfg = common.load()?;
            let embedder = FeatureHashEmbedder::new(cfg.dimension);
            match search(&client(&cfg)?, &embedder, &cfg.collection, &text, limit)? {
                None => return Err(UsageError("nothing to search for: give at least one term".into()).into()),
                Some(hits) if hits.is_empty() => println!("no blocks in collection {:?} yet", cfg.collection),
                Some(hits) => hits.iter().for_each(|h| println!("{}", format_hit(h))),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
