//! A minimal OVSDB JSON-RPC 1.0 client (RFC 7047 section 4) over a unix or TCP
//! stream socket: request/response matching by id, answering the server's
//! `echo`, and queueing `update` notifications for monitors.

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::error::{OvsError, Result};

/// Where the database listens: `unix:/path` or `tcp:host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbAddr {
    Unix(String),
    Tcp(String),
}

impl DbAddr {
    pub fn parse(s: &str) -> Result<DbAddr> {
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(OvsError::BadAddress(s.to_string()));
            }
            Ok(DbAddr::Unix(path.to_string()))
        } else if let Some(hp) = s.strip_prefix("tcp:") {
            match hp.rsplit_once(':') {
                Some((h, p)) if !h.is_empty() && p.parse::<u16>().is_ok() => Ok(DbAddr::Tcp(hp.to_string())),
                _ => Err(OvsError::BadAddress(s.to_string())),
            }
        } else {
            Err(OvsError::BadAddress(s.to_string()))
        }
    }
}

impl std::fmt::Display for DbAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DbAddr::Unix(p) => write!(f, "unix:{p}"),
            DbAddr::Tcp(hp) => write!(f, "tcp:{hp}"),
        }
    }
}

enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Stream {
    fn set_timeouts(&self, t: Option<Duration>) -> std::io::Result<()> {
        match self {
            Stream::Unix(s) => s.set_read_timeout(t).and_then(|()| s.set_write_timeout(t)),
            Stream::Tcp(s) => s.set_read_timeout(t).and_then(|()| s.set_write_timeout(t)),
        }
    }
    fn set_read_timeout(&self, t: Option<Duration>) -> std::io::Result<()> {
        match self {
            Stream::Unix(s) => s.set_read_timeout(t),
            Stream::Tcp(s) => s.set_read_timeout(t),
        }
    }
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Unix(s) => s.read(buf),
            Stream::Tcp(s) => s.read(buf),
        }
    }
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match self {
            Stream::Unix(s) => s.write_all(buf),
            Stream::Tcp(s) => s.write_all(buf),
        }
    }
}

/// How long a single request may wait for its answer.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// One connection to an OVSDB server.
pub struct Connection {
    addr: DbAddr,
    stream: Stream,
    buf: Vec<u8>,
    next_id: u64,
    notifications: VecDeque<Value>,
    /// Limit of one request (and of each socket read and write).
    timeout: Duration,
}

impl Connection {
    pub fn connect(addr: &DbAddr) -> Result<Connection> {
        Connection::connect_with(addr, CALL_TIMEOUT)
    }

    /// Connects; each request, socket read and write gives up after `timeout`.
    pub fn connect_with(addr: &DbAddr, timeout: Duration) -> Result<Connection> {
        let timeout = timeout.clamp(Duration::from_millis(1), MAX_WAIT);
        let stream = match addr {
            DbAddr::Unix(p) => UnixStream::connect(p).map(Stream::Unix),
            DbAddr::Tcp(hp) => connect_tcp(hp, timeout).map(|s| {
                let _ = s.set_nodelay(true);
                Stream::Tcp(s)
            }),
        }
        .map_err(|source| OvsError::Connect { addr: addr.to_string(), source })?;
        // A hung server must not block a write (or a read) forever: both time out with an error.
        stream.set_timeouts(Some(timeout)).map_err(|source| OvsError::Connect { addr: addr.to_string(), source })?;
        Ok(Connection {
            addr: addr.clone(),
            stream,
            buf: Vec::with_capacity(64 * 1024),
            next_id: 0,
            notifications: VecDeque::new(),
            timeout,
        })
    }

    pub fn addr(&self) -> &DbAddr {
        &self.addr
    }

    /// A failed write: a timeout means the server stopped reading (hung).
    fn write_err(&self, source: std::io::Error) -> OvsError {
        if matches!(source.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) {
            return OvsError::Timeout { addr: self.addr.to_string(), secs: self.timeout.as_secs() };
        }
        self.io_err(source)
    }

    fn io_err(&self, source: std::io::Error) -> OvsError {
        OvsError::Io { addr: self.addr.to_string(), source }
    }

    fn send(&mut self, msg: &Value) -> Result<()> {
        let bytes = serde_json::to_vec(msg).map_err(|e| OvsError::Protocol(e.to_string()))?;
        self.stream.write_all(&bytes).map_err(|e| self.write_err(e))
    }

    /// Sends a request and waits for its response, returning `result` or the RPC error.
    pub fn call(&mut self, method: &str, params: Value) -> Result<Value> {
        let mut answers = self.call_many(method, vec![params])?;
        answers.pop().unwrap_or_else(|| Err(OvsError::Protocol(format!("no answer to {method}"))))
    }

    /// Sends several requests at once (pipelined) and collects their answers in order.
    /// The outer error is a connection failure; each inner one is that request's RPC error.
    pub fn call_many(&mut self, method: &str, params: Vec<Value>) -> Result<Vec<Result<Value>>> {
        let first = self.next_id;
        let n = params.len() as u64;
        self.next_id += n;
        let mut out = Vec::with_capacity(params.len() * 64);
        for (i, p) in params.into_iter().enumerate() {
            let msg = json!({"method": method, "params": p, "id": first + i as u64});
            serde_json::to_writer(&mut out, &msg).map_err(|e| OvsError::Protocol(e.to_string()))?;
        }
        self.stream.write_all(&out).map_err(|e| self.write_err(e))?;
        let mut answers: Vec<Option<Result<Value>>> = (0..n).map(|_| None).collect();
        let mut missing = answers.len();
        let deadline = deadline_after(self.timeout);
        while missing > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(OvsError::Timeout { addr: self.addr.to_string(), secs: self.timeout.as_secs() });
            }
            let Some(msg) = self.receive(left)? else {
                continue;
            };
            let slot = msg
                .get("id")
                .and_then(Value::as_u64)
                .filter(|id| msg.get("method").is_none() && *id >= first && *id < first + n)
                .and_then(|id| answers.get_mut((id - first) as usize));
            match slot {
                Some(slot) if slot.is_none() => {
                    let error = msg.get("error").cloned().unwrap_or(Value::Null);
                    *slot = Some(if error.is_null() {
                        Ok(msg.get("result").cloned().unwrap_or(Value::Null))
                    } else if error.get("error").and_then(Value::as_str) == Some("database not available") {
                        // A relay or a clustered server still joining: it will answer soon.
                        Err(OvsError::NotReady { addr: self.addr().to_string() })
                    } else {
                        Err(OvsError::Rpc { method: method.to_string(), error: error.to_string() })
                    });
                    missing -= 1;
                }
                _ => self.dispatch(msg)?,
            }
        }
        Ok(answers.into_iter().flatten().collect())
    }

    /// Waits up to `timeout` for the next notification (e.g. a monitor `update`).
    pub fn next_notification(&mut self, timeout: Duration) -> Result<Option<Value>> {
        let deadline = deadline_after(timeout);
        loop {
            if let Some(n) = self.notifications.pop_front() {
                return Ok(Some(n));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            match self.receive(left)? {
                Some(msg) => self.dispatch(msg)?,
                None => return Ok(None),
            }
        }
    }

    /// Handles a message that is not the awaited response.
    fn dispatch(&mut self, msg: Value) -> Result<()> {
        match msg.get("method").and_then(Value::as_str) {
            Some("echo") => {
                let params = msg.get("params").cloned().unwrap_or(json!([]));
                let id = msg.get("id").cloned().unwrap_or(Value::Null);
                self.send(&json!({"result": params, "error": null, "id": id}))
            }
            Some(_) => {
                self.notifications.push_back(msg);
                Ok(())
            }
            None => Ok(()), // a stale response to an abandoned request
        }
    }

    /// Reads until one complete JSON value is buffered, or `timeout` passes (`None`).
    fn receive(&mut self, timeout: Duration) -> Result<Option<Value>> {
        let deadline = deadline_after(timeout);
        loop {
            if let Some(end) = frame_end(&self.buf) {
                let frame: Vec<u8> = self.buf.drain(..end).collect();
                let value = serde_json::from_slice(&frame).map_err(|e| OvsError::Protocol(e.to_string()))?;
                return Ok(Some(value));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.stream.set_read_timeout(Some(left.max(Duration::from_millis(1)))).map_err(|e| self.io_err(e))?;
            let mut chunk = [0u8; 64 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    return Err(OvsError::Closed { addr: self.addr.to_string() });
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {}
                Err(e) => return Err(self.io_err(e)),
            }
        }
    }
}

/// Connects to `host:port`, giving up on each resolved address after `timeout`.
fn connect_tcp(hp: &str, timeout: Duration) -> std::io::Result<TcpStream> {
    use std::net::ToSocketAddrs as _;
    let mut last = std::io::Error::new(ErrorKind::NotFound, format!("{hp} resolves to no address"));
    for a in hp.to_socket_addrs()? {
        match TcpStream::connect_timeout(&a, timeout) {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// The longest single wait; longer ones (a huge `watch --interval`) are cut to this.
pub const MAX_WAIT: Duration = Duration::from_secs(24 * 60 * 60);

/// `now + timeout`, with `timeout` capped at [`MAX_WAIT`] so no value can overflow.
pub fn deadline_after(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout.min(MAX_WAIT)).unwrap_or(now)
}

/// Finds where the first complete top-level JSON object or array in `buf` ends.
/// OVSDB JSON-RPC has no framing besides the JSON syntax itself.
pub fn frame_end(buf: &[u8]) -> Option<usize> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut started = false;
    for (i, &b) in buf.iter().enumerate() {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                started = true;
            }
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                if started && depth == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_on_json_boundaries() {
        let s = br#"{"a":"}\"{","b":[1,{"c":2}]}{"next":1}"#;
        let end = frame_end(s).unwrap();
        assert_eq!(&s[..end], br#"{"a":"}\"{","b":[1,{"c":2}]}"#);
        assert_eq!(frame_end(&s[end..]), Some(s.len() - end));
        assert_eq!(frame_end(br#"{"a":[1,2"#), None);
        assert_eq!(frame_end(b"  \n"), None);
    }

    #[test]
    fn huge_timeouts_do_not_overflow() {
        let d = deadline_after(Duration::MAX);
        assert!(d > Instant::now() + Duration::from_secs(3600));
    }

    #[test]
    fn parses_addresses() {
        assert_eq!(DbAddr::parse("unix:/run/db.sock").unwrap(), DbAddr::Unix("/run/db.sock".into()));
        assert_eq!(DbAddr::parse("tcp:127.0.0.1:6640").unwrap(), DbAddr::Tcp("127.0.0.1:6640".into()));
        assert!(DbAddr::parse("/run/db.sock").is_err());
        assert!(DbAddr::parse("tcp:host").is_err());
        assert!(DbAddr::parse("unix:").is_err());
    }
}
