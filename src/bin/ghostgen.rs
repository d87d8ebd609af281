//! `ghostgen`: compile a GhostBridge spec into a NixOS flake.
//!
//! Exit codes: 0 success; 1 failure (stale output, refused overwrite, a host
//! not deployed); 2 usage or invalid input (bad arguments, a missing spec
//! file, an invalid spec, a corrupt manifest).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use ghostbridge::deploy::build as system_build;
use ghostbridge::deploy::fleet;
use ghostbridge::deploy::host::Settings;
use ghostbridge::deploy::target::{self, Target};
use ghostbridge::generate::{self, write};
use ghostbridge::runtime::duration::HumanDuration;
use ghostbridge::runtime::exit;
use ghostbridge::spec::{self, BuildOn, render_all};

/// The reference server's spec, written by `ghostgen init`.
const REFERENCE_SPEC: &str = include_str!("../../examples/ghostbridge.toml");

#[derive(Parser)]
#[command(name = "ghostgen", version, about = "Compile a GhostBridge spec (TOML) into a NixOS flake.")]
#[command(
    after_help = "Typical use:\n  ghostgen init                 write spec.toml for the reference server\n  ghostgen check spec.toml      validate; errors point at file:line:col\n  ghostgen build spec.toml      write flake.nix, hosts/ and checks/ next to it\n  nix flake check               evaluate every host and run the VM checks\n  ghostgen deploy spec.toml     deploy every host; each rolls back by itself unless healthy"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write a commented spec.toml for the reference server into DIR (default: .). Never overwrites.
    Init { dir: Option<PathBuf> },
    /// Validate SPEC and print every problem with its location and a fix.
    Check { spec: PathBuf },
    /// Generate the flake from SPEC.
    Build {
        spec: PathBuf,
        /// Output folder (default: the spec's folder).
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Write nothing; exit 1 if the files on disk differ from what build would write.
        #[arg(long)]
        check: bool,
        /// Overwrite generated files even if they were edited since the last build.
        #[arg(long)]
        force: bool,
    },
    /// Print the JSON Schema of the spec (for editor completion, e.g. taplo).
    Schema,
    /// Build, copy and activate each host's new generation; make it the boot
    /// default only if the host's doctor reports healthy over a new SSH
    /// connection. Otherwise the host switches back by itself.
    Deploy {
        spec: PathBuf,
        /// Hosts to deploy (default: every host of the spec).
        hosts: Vec<String>,
        /// Only hosts whose `[deploy] tags` hold this tag (repeatable: all must match).
        #[arg(long)]
        tag: Vec<String>,
        /// The generated flake's folder (default: the spec's folder).
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Hosts deployed at the same time.
        #[arg(long, default_value_t = 1)]
        parallel: usize,
        /// The first K hosts are deployed alone first; the rest only if they all succeed.
        #[arg(long, default_value_t = 0)]
        canary: usize,
        /// A host not confirmed within this long switches back by itself.
        #[arg(long, default_value = "60s")]
        confirm_timeout: HumanDuration,
        /// Where to build, for every host (default: each host's `[deploy] build_on`).
        #[arg(long, value_enum)]
        build_on: Option<BuildOn>,
        /// Print what would be done, and touch nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// A failure with the exit code it deserves.
struct Exit(u8);

/// Exit codes as in every GhostBridge binary: 0 ok, 1 failure (a stale tree,
/// edited files, a busy or unwritable output folder), 2 usage or invalid input
/// (an invalid spec, a corrupt manifest).
fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => match e.downcast_ref::<Exit>() {
            Some(Exit(code)) => ExitCode::from(*code),
            None => {
                let invalid_input = e
                    .chain()
                    .any(|c| matches!(c.downcast_ref::<write::WriteError>(), Some(write::WriteError::Manifest(_))));
                let code = exit::report("ghostgen", &e);
                if invalid_input { ExitCode::from(exit::INVALID) } else { code }
            }
        },
    }
}

impl std::fmt::Debug for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {}", self.0)
    }
}
impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {}", self.0)
    }
}
impl std::error::Error for Exit {}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Init { dir } => init(&dir.unwrap_or_else(|| PathBuf::from("."))),
        Command::Check { spec } => {
            let (loaded, name, _) = load(&spec)?;
            let hosts: Vec<&str> = loaded.spec.hosts.iter().map(|h| h.name.as_str()).collect();
            println!(
                "{name}: valid ({} host{}: {})",
                hosts.len(),
                if hosts.len() == 1 { "" } else { "s" },
                hosts.join(", ")
            );
            // What each snapshot policy keeps at most (a warning above the bound),
            // and how a host without bridges reaches the network.
            for h in &loaded.spec.hosts {
                if h.network.bridges.is_empty() && h.network.interfaces.is_empty() {
                    println!(
                        "{}: warning: no OVS bridge or plain interface is declared; the host takes DHCP on every physical NIC",
                        h.name
                    );
                }
                if h.disk.is_none() {
                    println!("{}: note: {}", h.name, ghostbridge::generate::NO_DISK_INSTALL.join(" "));
                }
                if let Some(s) = &h.snapshotter {
                    let per_tier = s.max_live_per_tier();
                    let mut parts = vec![format!("{} every {} for {}", per_tier[0], s.interval, s.retention)];
                    for (t, n) in s.tiers.iter().zip(&per_tier[1..]) {
                        parts.push(format!("{n} every {} for {}", t.every, t.keep));
                    }
                    println!(
                        "{}: keeps at most {} live snapshots: {}",
                        h.name,
                        s.max_live_snapshots(),
                        parts.join(", then ")
                    );
                }
            }
            Ok(())
        }
        Command::Build { spec, output, check, force } => build(&spec, output, check, force),
        Command::Deploy { spec, hosts, tag, output, parallel, canary, confirm_timeout, build_on, dry_run } => {
            let rollout = fleet::Rollout { parallel, canary };
            deploy(&spec, output, &hosts, &tag, rollout, confirm_timeout.as_duration(), build_on, dry_run)
        }
        Command::Schema => {
            let schema = serde_json::to_string_pretty(&spec::schema::file_schema())?;
            println!("{schema}");
            Ok(())
        }
    }
}

fn init(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join("spec.toml");
    match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
        Ok(mut f) => {
            f.write_all(REFERENCE_SPEC.as_bytes()).with_context(|| format!("cannot write {}", path.display()))?;
            println!("wrote {}: edit it, then run `ghostgen check {}`", path.display(), path.display());
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            eprintln!(
                "ghostgen: {} already exists; not overwriting it (remove it, or init another folder)",
                path.display()
            );
            Err(Exit(1).into())
        }
        Err(e) => Err(e).with_context(|| format!("cannot create {}", path.display())),
    }
}

/// Reads and validates a spec; prints diagnostics; invalid -> exit 2.
fn load(path: &Path) -> anyhow::Result<(spec::Loaded, String, String)> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        // A spec path that names nothing is a usage mistake (exit 2); other
        // read errors are failures (exit 1).
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(exit::UsageError(format!("{}: no such spec file", path.display())).into());
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read spec {}", path.display())),
    };
    let shown = path.display().to_string();
    match spec::load(&text) {
        Ok(loaded) => {
            if !loaded.warnings.is_empty() {
                eprint!("{}", render_all(&loaded.warnings, &shown, &text));
            }
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "spec.toml".into());
            Ok((loaded, name, text))
        }
        Err(rejected) => {
            eprint!("{}", render_all(&rejected.diagnostics, &shown, &text));
            let errors = rejected.diagnostics.iter().filter(|d| d.is_error()).count();
            eprintln!("{shown}: {errors} error{} found; nothing was written", if errors == 1 { "" } else { "s" });
            Err(Exit(exit::INVALID).into())
        }
    }
}

/// Where the flake is written: `-o`, or the spec's folder.
fn output_dir(spec_path: &Path, output: Option<PathBuf>) -> PathBuf {
    output.unwrap_or_else(|| {
        spec_path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."))
    })
}

fn build(spec_path: &Path, output: Option<PathBuf>, check: bool, force: bool) -> anyhow::Result<()> {
    let (loaded, name, text) = load(spec_path)?;
    let explicit_output = output.is_some();
    let out = output_dir(spec_path, output);
    let files = generate::plan(&loaded.spec, &name).context("cannot generate the flake")?;
    if check {
        let s = write::staleness(&out, &files)?;
        if s.is_fresh() {
            println!("{}: up to date", out.display());
            return Ok(());
        }
        for (what, paths) in
            [("missing", &s.missing), ("out of date", &s.different), ("no longer generated", &s.obsolete)]
        {
            for p in paths {
                eprintln!("{what}: {}", out.join(p).display());
            }
        }
        let dir = if explicit_output { format!(" -o {}", out.display()) } else { String::new() };
        eprintln!("{}: stale; run `ghostgen build {}{dir}`", out.display(), spec_path.display());
        return Err(Exit(1).into());
    }
    match write::write(&out, &files, &name, &text, force) {
        Ok(outcome) => {
            for p in &outcome.written {
                println!("wrote     {}", out.join(p).display());
            }
            for p in &outcome.removed {
                println!("removed   {}", out.join(p).display());
            }
            println!(
                "{}: {} written, {} unchanged, {} removed",
                out.display(),
                outcome.written.len(),
                outcome.unchanged.len(),
                outcome.removed.len()
            );
            Ok(())
        }
        Err(e @ write::WriteError::Edited(_)) => {
            eprintln!("ghostgen: {e}");
            Err(Exit(1).into())
        }
        Err(e) => Err(e.into()),
    }
}

/// `ghostgen deploy`: every selected host through the safe deployment.
#[allow(clippy::too_many_arguments)]
fn deploy(
    spec_path: &Path,
    output: Option<PathBuf>,
    names: &[String],
    tags: &[String],
    rollout: fleet::Rollout,
    confirm_timeout: std::time::Duration,
    build_on: Option<BuildOn>,
    dry_run: bool,
) -> anyhow::Result<()> {
    if rollout.parallel == 0 {
        return Err(exit::UsageError("--parallel must be at least 1".into()).into());
    }
    let (loaded, name, _) = load(spec_path)?;
    let out = output_dir(spec_path, output);
    // The flake on disk must be what the spec generates: deploy what was reviewed.
    let files = generate::plan(&loaded.spec, &name).context("cannot generate the flake")?;
    if !write::staleness(&out, &files)?.is_fresh() {
        eprintln!(
            "ghostgen: {} is not what {} generates; run `ghostgen build` (and review the change) first",
            out.display(),
            spec_path.display()
        );
        return Err(Exit(1).into());
    }
    let hosts = fleet::select(&loaded.spec.hosts, names, tags).map_err(exit::UsageError)?;
    let dir = std::fs::canonicalize(&out).with_context(|| format!("cannot resolve {}", out.display()))?;
    let mut jobs = Vec::new();
    for h in hosts {
        let attr = system_build::toplevel(&dir, &h.name).map_err(exit::UsageError)?;
        jobs.push(fleet::Job { target: Target::of(h), attr });
    }
    if dry_run {
        for job in &jobs {
            let t = &job.target;
            let jump = t.jump.as_ref().map(|j| format!(" via {j}")).unwrap_or_default();
            let on = match build_on.unwrap_or(t.build_on) {
                BuildOn::Local => "here, then copied",
                BuildOn::Remote => "on the host",
            };
            println!("{}: {}@{} port {}{jump}; built {on}: {}", t.host, t.user, t.address, t.port, job.attr);
        }
        println!(
            "{} host{}, {} at a time, {} canar{} first; each rolls back unless healthy within {}",
            jobs.len(),
            if jobs.len() == 1 { "" } else { "s" },
            rollout.parallel,
            rollout.canary.min(jobs.len()),
            if rollout.canary == 1 { "y" } else { "ies" },
            humantime::format_duration(confirm_timeout)
        );
        return Ok(());
    }
    let settings = Settings {
        confirm_timeout,
        build_on,
        user_opts: target::user_ssh_options(std::env::var("NIX_SSHOPTS").ok().as_deref()),
        activation_limit: std::time::Duration::from_secs(600),
    };
    let progress = |host: &str, what: &str| eprintln!("{host}: {}", exit::terminal_safe(what));
    let reports = fleet::deploy(&jobs, rollout, &settings, &progress);
    print!("{}", fleet::summary(&reports));
    if fleet::all_committed(&reports) { Ok(()) } else { Err(Exit(1).into()) }
}
