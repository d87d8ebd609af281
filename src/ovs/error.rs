//! The reconciler's error type: every variant says what went wrong and what to do about it.

use std::path::PathBuf;

/// Everything that can stop `ghostbridge-ovs` from converging.
#[derive(Debug, thiserror::Error)]
pub enum OvsError {
    #[error("bad database address {0:?}: use unix:/path/to/db.sock or tcp:HOST:PORT")]
    BadAddress(String),

    #[error(
        "cannot connect to the Open vSwitch database at {addr}: {source}. \
         Is ovsdb-server running (systemctl status ovsdb) and is the address right (--db, or \"db\" in the config)?"
    )]
    Connect { addr: String, source: std::io::Error },

    #[error(
        "the connection to the Open vSwitch database at {addr} failed: {source}. Check that ovsdb-server is still running, then run again"
    )]
    Io { addr: String, source: std::io::Error },

    #[error(
        "the Open vSwitch database at {addr} closed the connection (was ovsdb-server restarted?); run again once it is back"
    )]
    Closed { addr: String },

    #[error(
        "the Open vSwitch database at {addr} is not available yet (a relay or cluster member still joining); run again once it is"
    )]
    NotReady { addr: String },

    #[error("no answer from the Open vSwitch database at {addr} within {secs}s; check that ovsdb-server is not hung")]
    Timeout { addr: String, secs: u64 },

    #[error("the Open vSwitch database sent something that is not valid OVSDB JSON-RPC: {0}")]
    Protocol(String),

    #[error("the Open vSwitch database refused {method}: {error}")]
    Rpc { method: String, error: String },

    #[error(
        "the database at {addr} does not have the Open_vSwitch schema this program needs ({detail}). \
         Point --db at the ovsdb-server of Open vSwitch (database Open_vSwitch, schema 7.x or later)"
    )]
    SchemaMismatch { addr: String, detail: String },

    #[error(transparent)]
    Config(#[from] crate::runtime::config::ConfigError),

    #[error(
        "bridge {bridge}: port {port} names a network interface that does not exist on this host. \
         Create the interface (or fix the name) or remove it from the config; nothing was changed"
    )]
    MissingNic { bridge: String, port: String },

    #[error(
        "bridge {0} already exists but is not managed by ghostbridge-ovs (no external_ids:ghostbridge-managed=true). \
         Delete it (ovs-vsctl del-br {0}) or hand it over (ovs-vsctl br-set-external-id {0} ghostbridge-managed true); nothing was changed"
    )]
    Unowned(String),

    #[error(
        "port {port} is wanted on bridge {wanted} but is attached to bridge {actual}, which ghostbridge-ovs does not manage. \
         Remove it there (ovs-vsctl del-port {actual} {port}) or take it out of the config; nothing was changed"
    )]
    PortElsewhere { port: String, wanted: String, actual: String },

    #[error(
        "transaction conflict: another client changed the Open vSwitch database during each of {attempts} attempts; \
         nothing was written. Find the other writer (ovsdb-client monitor Open_vSwitch) and run again"
    )]
    Conflict { attempts: u32 },

    #[error("the Open vSwitch database rejected the transaction ({0}); nothing was written")]
    TransactFailed(String),

    #[error(
        "ovs-vswitchd did not apply the new configuration within {secs}s (cur_cfg {cur} < next_cfg {want}). \
         The database was updated; check that ovs-vswitchd is running (systemctl status ovs-vswitchd) and its log"
    )]
    VswitchdTimeout { secs: u64, cur: i64, want: i64 },

    #[error("bridge {bridge}: extra flow {flow:?} is not valid: {detail}. Fix it in extra_flows; nothing was written")]
    BadFlow { bridge: String, flow: String, detail: String },

    #[error("flows of bridge {bridge}: {msg}")]
    Flows { bridge: String, msg: String },

    #[error(
        "the switch refused the flows of new bridge(s) {bridges} ({cause}); they were removed again, so no bridge \
         is left forwarding nothing. Fix extra_flows and run again"
    )]
    RolledBack { bridges: String, cause: String },

    #[error("cannot run {program}: {source}. Is Open vSwitch installed and on PATH?")]
    Spawn { program: String, source: std::io::Error },

    #[error("ethtool on {iface}: {msg}")]
    Ethtool { iface: String, msg: String },

    #[error("cannot write metrics to {path}: {source}")]
    Metrics { path: PathBuf, source: std::io::Error },
}

pub type Result<T> = std::result::Result<T, OvsError>;
