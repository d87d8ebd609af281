//! `ghostbridge-ovs`: converges Open vSwitch bridges, ports, flows and uplink
//! offloads to the JSON config written by `services.ghostbridge.ovs`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use ghostbridge::ovs::{self, Config, DbAddr, Options, Report};
use ghostbridge::runtime::config::check_config_command;
use ghostbridge::runtime::duration::HumanDuration;
use ghostbridge::runtime::exit;
use ghostbridge::runtime::notify;

/// Open vSwitch reconciler: bridges, ports, flows and uplink offloads from a JSON config,
/// applied over OVSDB (RFC 7047) in one transaction. Only bridges marked
/// external_ids:ghostbridge-managed=true are ever changed or removed.
#[derive(Parser)]
#[command(version, about, long_about = None)]
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
    /// Converge OVS to the config once; exit 0 when done.
    Apply(Common),
    /// Print bridges, ports, flows, offloads and drift; exit 0 in sync, 1 on drift.
    Status(Common),
    /// Apply, then re-apply whenever OVSDB drifts (and every --interval).
    Watch {
        #[command(flatten)]
        common: Common,
        /// Re-check flows and offloads this often even without database changes.
        #[arg(long, default_value = "10s")]
        interval: HumanDuration,
    },
}

#[derive(Args)]
struct Common {
    /// The JSON config (see examples/ovs.json).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// OVSDB address, overriding `ovsdb` in the config: unix:/path or tcp:host:port.
    #[arg(long = "ovsdb", visible_alias = "db", value_name = "ADDR")]
    ovsdb: Option<String>,
}

impl Common {
    fn load(&self) -> anyhow::Result<(Config, DbAddr)> {
        let config: Config = ghostbridge::runtime::config::load(&self.config)?;
        let db = self.ovsdb.clone().unwrap_or_else(|| config.ovsdb.clone());
        let addr = DbAddr::parse(&db)?;
        Ok((config, addr))
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => exit::report("ghostbridge-ovs", &e),
    }
}

fn describe(r: &Report) -> String {
    let mut lines = Vec::new();
    for c in &r.changes {
        lines.push(c.to_string());
    }
    for b in &r.flows_replaced {
        lines.push(format!("~ flows of bridge {b} replaced"));
    }
    for o in &r.offload {
        if !o.turned_off.is_empty() {
            lines.push(format!("~ offloads turned off on {}: {}", o.iface, o.turned_off.join(", ")));
        }
    }
    for w in &r.warnings {
        lines.push(format!("warning: {w}"));
    }
    if r.reconnects > 0 {
        lines.push(format!("note: the database connection was re-established {} time(s) during the run", r.reconnects));
    }
    if lines.is_empty() {
        lines.push("in sync: nothing written".into());
    }
    lines.join("\n")
}

fn write_metrics(config: &Config, totals: &ovs::metrics::Totals, took: Duration, ok: bool) {
    if let Some(dir) = &config.metrics_dir
        && let Err(e) = ovs::metrics::write(dir, totals, took, ok)
    {
        eprintln!("ghostbridge-ovs: warning: {e}");
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let opts = Options::default();
    match cli.command {
        Command::CheckConfig { file } => Ok(check_config_command::<Config>(&file)),
        Command::Apply(common) => {
            let (config, addr) = common.load()?;
            let start = Instant::now();
            let result = ovs::apply(&addr, &config, &opts);
            let mut totals = ovs::metrics::Totals::default();
            totals.record(result.as_ref().map_err(|_| ()));
            write_metrics(&config, &totals, start.elapsed(), result.is_ok());
            let report = result.context("apply failed")?;
            println!("{}", describe(&report));
            Ok(ExitCode::SUCCESS)
        }
        Command::Status(common) => {
            let (config, addr) = common.load()?;
            let s = ovs::status::status(&addr, &config, &opts).context("status failed")?;
            print!("{}", s.text);
            Ok(if s.drift.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        Command::Watch { common, interval } => {
            let (config, addr) = common.load()?;
            let mut period = interval.as_duration().max(Duration::from_millis(100));
            if let Some(wd) = notify::watchdog_interval() {
                period = period.min(wd / 2);
            }
            let mut totals = ovs::metrics::Totals::default();
            let mut ready = false;
            let stop = std::sync::atomic::AtomicBool::new(false);
            ovs::watch::run(&addr, &config, &opts, period, &stop, |r, took| {
                totals.record(r.as_ref().map_err(|_| ()));
                write_metrics(&config, &totals, took, r.is_ok());
                notify::watchdog();
                match r {
                    Ok(report) => {
                        if !report.changes.is_empty()
                            || !report.flows_replaced.is_empty()
                            || !report.warnings.is_empty()
                        {
                            println!("{}", describe(report));
                        }
                        if !ready {
                            println!("converged; watching {addr}");
                            notify::ready();
                            ready = true;
                        }
                        notify::status("converged");
                    }
                    Err(e) => {
                        eprintln!("ghostbridge-ovs: error: {e}");
                        notify::status(&format!("error: {e}"));
                    }
                }
            });
            Ok(ExitCode::SUCCESS)
        }
    }
}
