//! `org.ghostbridge.Snapshotter1`: the snapshot chain on D-Bus. Properties
//! `Height` (t), `HeadHash` (s, hex), `LastSnapshotNs` (x); methods
//! `Verify() -> (b ok, t checked, s message)` and
//! `Recent(u n) -> a(tsxs)` (height, snapshot, time ns, hash hex), and the
//! change index's queries `Changes(s path, x since_ns) -> a(txsss)`,
//! `Diff(t from, t to) -> a(sss)` and `Log(x since_ns, u n) -> a(txbxs)`;
//! signal `BlockAdded(t height, s hash)`.
//!
//! The system bus is used, or the bus named by `DBUS_SYSTEM_BUS_ADDRESS`.
//!
//! The tick loop never waits on a D-Bus caller: the head it publishes lives in
//! a mutex of its own (held for a copy), not behind the object server's lock,
//! which a long `Verify()` holds for its whole run on zbus's own thread.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use zbus::blocking::Connection;
use zbus::interface;
use zbus::object_server::SignalEmitter;
use zbus::zvariant::Value;

use crate::snapshot::changes::Change;
use crate::snapshot::history;
use crate::snapshot::store::{BlockChanges, Store};

pub const BUS_NAME: &str = "org.ghostbridge.Snapshotter";
pub const OBJECT_PATH: &str = "/org/ghostbridge/Snapshotter";
pub const INTERFACE: &str = "org.ghostbridge.Snapshotter1";
/// `Recent(n)` returns at most this many blocks; `Changes`, `Diff` and `Log`
/// refuse to answer with more rows than this.
pub const RECENT_MAX: u32 = 10_000;

/// `Changes` rows: (height, time ns, kind, path, old path or "").
type ChangeRowTuple = (u64, i64, String, String, String);
/// `Log` rows: (height, time ns, pruned, change count or -1, note).
type LogRowTuple = (u64, i64, bool, i64, String);

fn failed(e: impl std::fmt::Display) -> zbus::fdo::Error {
    zbus::fdo::Error::Failed(e.to_string())
}

fn bounded<T>(rows: Vec<T>, narrow: &str) -> zbus::fdo::Result<Vec<T>> {
    if rows.len() > RECENT_MAX as usize {
        return Err(zbus::fdo::Error::LimitsExceeded(format!(
            "{} rows match, more than {RECENT_MAX}: {narrow}",
            rows.len()
        )));
    }
    Ok(rows)
}

/// `(kind, path, old path or "")` of a change, paths as lossy UTF-8.
fn change_tuple(c: &Change) -> (String, String, String) {
    let text = |p: &[u8]| String::from_utf8_lossy(p).into_owned();
    (c.kind.name().to_string(), text(&c.path), c.from.as_deref().map(text).unwrap_or_default())
}

/// The head as last published.
#[derive(Debug, Clone, Default)]
struct Head {
    height: u64,
    head_hash: String,
    last_snapshot_ns: i64,
}

/// The served object: the head (shared with the publisher), and the database for queries.
pub struct SnapshotterObject {
    database: PathBuf,
    head: Arc<Mutex<Head>>,
}

impl SnapshotterObject {
    fn head(&self) -> Head {
        self.head.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

#[interface(name = "org.ghostbridge.Snapshotter1")]
impl SnapshotterObject {
    /// Height of the newest block (0 also when the chain is empty; see HeadHash).
    #[zbus(property)]
    fn height(&self) -> u64 {
        self.head().height
    }

    /// Hash of the newest block, lower-case hex; empty while the chain is empty.
    #[zbus(property)]
    fn head_hash(&self) -> String {
        self.head().head_hash
    }

    /// CLOCK_REALTIME ns of the newest snapshot; 0 while the chain is empty.
    #[zbus(property)]
    fn last_snapshot_ns(&self) -> i64 {
        self.head().last_snapshot_ns
    }

    /// Recomputes the whole chain: (valid, blocks checked, message).
    fn verify(&self) -> (bool, u64, String) {
        match Store::open_reader(&self.database).and_then(|s| s.verify()) {
            Ok(v) => (v.ok(), v.checked, v.message()),
            Err(e) => (false, 0, format!("cannot verify: {e}")),
        }
    }

    /// The newest `n` blocks (at most 10000), newest first: (height, snapshot, time ns, hash hex).
    fn recent(&self, n: u32) -> zbus::fdo::Result<Vec<(u64, String, i64, String)>> {
        let store = Store::open_reader(&self.database).map_err(|e| zbus::fdo::Error::Failed(e.to_string()))?;
        let blocks = store.recent(n.min(RECENT_MAX)).map_err(|e| zbus::fdo::Error::Failed(e.to_string()))?;
        Ok(blocks.into_iter().map(|b| (b.height, b.snapshot, b.time_ns, hex::encode(b.hash))).collect())
    }

    /// Every change to `path` or below it since `since_ns` (0: all), oldest
    /// first: (height, time ns, kind, path, old path of a rename or "").
    fn changes(&self, path: &str, since_ns: i64) -> zbus::fdo::Result<Vec<ChangeRowTuple>> {
        let path = history::parse_path(std::ffi::OsStr::new(path), None)
            .map_err(|e| zbus::fdo::Error::InvalidArgs(e.to_string()))?;
        let store = Store::open_reader(&self.database).map_err(failed)?;
        let since = (since_ns != 0).then_some(since_ns);
        let rows = history::changes(&store, &path, since).map_err(failed)?;
        let rows = bounded(rows, "narrow the path or give a later since_ns")?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let (kind, path, from) = change_tuple(&r.change);
                (r.height, r.time_ns, kind, path, from)
            })
            .collect())
    }

    /// The net change from block `from` to block `to`: (kind, path, old path or "").
    fn diff(&self, from: u64, to: u64) -> zbus::fdo::Result<Vec<(String, String, String)>> {
        let store = Store::open_reader(&self.database).map_err(failed)?;
        let list = history::diff(&store, from, to).map_err(failed)?;
        Ok(bounded(list, "ask for a shorter span")?.iter().map(change_tuple).collect())
    }

    /// Blocks since `since_ns` (the newest `n` when 0): (height, time ns,
    /// pruned, change count or -1 without a list, why there is none or "").
    fn log(&self, since_ns: i64, n: u32) -> zbus::fdo::Result<Vec<LogRowTuple>> {
        let store = Store::open_reader(&self.database).map_err(failed)?;
        let since = (since_ns != 0).then_some(since_ns);
        let entries = history::timeline(&store, since, n.min(RECENT_MAX)).map_err(failed)?;
        let entries = bounded(entries, "give a later since_ns")?;
        Ok(entries
            .into_iter()
            .map(|(b, state)| {
                let (count, note) = match state {
                    BlockChanges::Indexed(n) => (n as i64, String::new()),
                    BlockChanges::Expired(n) => (n as i64, "rows removed by change retention".to_string()),
                    BlockChanges::Unavailable(why) => (-1, why),
                };
                (b.height, b.time_ns, b.pruned_ns.is_some(), count, note)
            })
            .collect())
    }

    /// Emitted after each block is committed: (height, hash hex).
    #[zbus(signal)]
    async fn block_added(emitter: &SignalEmitter<'_>, height: u64, hash: String) -> zbus::Result<()>;
}

/// Why the bus could not be served.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error(
        "D-Bus: {0} (is the system bus running, and does its policy let this user own {BUS_NAME}? see org.ghostbridge.Snapshotter.conf)"
    )]
    Zbus(#[from] zbus::Error),
    #[error("D-Bus: cannot connect to the system bus at {address}: {source} (is the system bus running?)")]
    Connect { address: String, source: std::io::Error },
}

/// Puts the calling thread at the normal scheduling policy (`SCHED_OTHER`,
/// which needs no privilege to move to), whatever the process runs at.
fn normal_scheduling() {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a valid sched_param; pid 0 is the calling thread.
    // It cannot fail for SCHED_OTHER with priority 0 on the calling thread.
    unsafe { libc::sched_setscheduler(0, libc::SCHED_OTHER, &param) };
}

/// A builder for the system bus, whose address zbus reads (from
/// `DBUS_SYSTEM_BUS_ADDRESS`, else the default socket). A Unix socket is
/// connected here, on the calling thread: zbus would connect it on a thread
/// of the `blocking` crate's pool, and that thread then stays for the life
/// of the process and wakes every 500 ms (0.11 ms of CPU a second measured
/// on a VM, a tenth of a snapshot's cost). Other transports are left to zbus.
fn system_bus() -> Result<zbus::blocking::connection::Builder<'static>, BusError> {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixStream};
    use zbus::address::transport::{Transport, UnixSocket};

    let address = zbus::Address::system()?;
    let target = match address.transport() {
        Transport::Unix(unix) => match unix.path() {
            UnixSocket::File(path) => SocketAddr::from_pathname(path),
            UnixSocket::Abstract(name) => SocketAddr::from_abstract_name(name.as_encoded_bytes()),
            _ => return Ok(zbus::blocking::connection::Builder::address(address)?),
        },
        _ => return Ok(zbus::blocking::connection::Builder::address(address)?),
    };
    let stream = target
        .and_then(|target| UnixStream::connect_addr(&target))
        .map_err(|source| BusError::Connect { address: address.to_string(), source })?;
    Ok(zbus::blocking::connection::Builder::async_io_unix_stream(stream))
}

/// A connection owning the name, through which the daemon publishes new blocks.
pub struct Publisher {
    conn: Connection,
    head: Arc<Mutex<Head>>,
}

impl Publisher {
    /// Connects to the system bus (or `DBUS_SYSTEM_BUS_ADDRESS`), serves the object, owns the name.
    pub fn connect(database: PathBuf, head: Option<(u64, [u8; 32], i64)>) -> Result<Publisher, BusError> {
        let (height, head_hash, last_snapshot_ns) =
            head.map(|(h, hash, ns)| (h, hex::encode(hash), ns)).unwrap_or((0, String::new(), 0));
        let head = Arc::new(Mutex::new(Head { height, head_hash, last_snapshot_ns }));
        let object = SnapshotterObject { database, head: Arc::clone(&head) };
        // zbus starts its threads (the executor that runs every method, the
        // reactor) from the thread that builds the connection, and they take
        // its scheduling policy. Built from a thread at the normal policy, they
        // stay there when the daemon runs at SCHED_FIFO: a caller looping on
        // Verify() gets no real-time CPU, and the tick keeps its priority.
        let conn = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    normal_scheduling();
                    system_bus()?.serve_at(OBJECT_PATH, object)?.name(BUS_NAME)?.build().map_err(BusError::from)
                })
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })?;
        Ok(Publisher { conn, head })
    }

    /// Updates the properties, emits PropertiesChanged and BlockAdded.
    pub fn block_added(&self, height: u64, hash: &[u8; 32], time_ns: i64) -> Result<(), BusError> {
        let hash_hex = hex::encode(hash);
        *self.head.lock().unwrap_or_else(PoisonError::into_inner) =
            Head { height, head_hash: hash_hex.clone(), last_snapshot_ns: time_ns };
        let mut changed: HashMap<&str, Value<'_>> = HashMap::new();
        changed.insert("Height", Value::from(height));
        changed.insert("HeadHash", Value::from(hash_hex.as_str()));
        changed.insert("LastSnapshotNs", Value::from(time_ns));
        self.conn.emit_signal(
            None::<()>,
            OBJECT_PATH,
            "org.freedesktop.DBus.Properties",
            "PropertiesChanged",
            &(INTERFACE, changed, Vec::<String>::new()),
        )?;
        self.conn.emit_signal(None::<()>, OBJECT_PATH, INTERFACE, "BlockAdded", &(height, hash_hex))?;
        Ok(())
    }
}
