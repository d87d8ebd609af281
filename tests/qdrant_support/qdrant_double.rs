//! A Qdrant test double: a small HTTP server on 127.0.0.1 that implements the
//! endpoints the sync uses with in-memory state, and checks EVERY request
//! against Qdrant's OpenAPI description first (invalid -> 400, and recorded).
//!
//! With `QDRANT_URL` set it keeps validating and injecting faults, but forwards
//! each valid request to that real Qdrant instead of answering itself, so the
//! same tests run against the real server (`QDRANT_API_KEY` is sent upstream
//! when set).
//!
//! Fault injection: the next N requests answer a 5xx, every answer is delayed,
//! the server is stopped (closed port) and restarted on the same port, and an
//! API key can be required.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::openapi::OpenApi;

fn spec() -> &'static OpenApi {
    static SPEC: OnceLock<OpenApi> = OnceLock::new();
    SPEC.get_or_init(OpenApi::load)
}

/// One request as the double saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub api_key: Option<String>,
    pub status: u16,
    /// For upserts: the `height` payload of each point, in request order.
    pub heights: Vec<i64>,
}

#[derive(Debug, Default)]
struct Faults {
    /// Answer this many of the next requests with `fail_status` (after any `skip`).
    fail_next: usize,
    fail_skip: usize,
    fail_status: u16,
    delay: Duration,
    api_key: Option<String>,
    /// Bodies larger than this are refused, as Qdrant's `max_request_size_mb` does.
    max_body: Option<usize>,
    /// How: 400 with Qdrant's own message (what a real Qdrant answers), or 413.
    too_large_status: u16,
}

#[derive(Debug, Clone)]
struct Collection {
    size: u64,
    distance: String,
    /// By the ID's JSON text: the ID, the vector, the payload.
    points: BTreeMap<String, StoredPoint>,
}

type StoredPoint = (Value, Vec<f64>, Map<String, Value>);

#[derive(Default)]
struct State {
    collections: HashMap<String, Collection>,
    seen: Vec<Seen>,
    invalid: Vec<String>,
}

struct Shared {
    state: Mutex<State>,
    faults: Mutex<Faults>,
    upstream: Option<Upstream>,
}

/// A real Qdrant: base URL, API key, client.
type Upstream = (String, Option<String>, ureq::Agent);

pub struct QdrantDouble {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: Option<(Arc<tiny_http::Server>, JoinHandle<()>)>,
}

/// The real Qdrant to test against, if any.
pub fn real_qdrant_url() -> Option<String> {
    std::env::var("QDRANT_URL").ok().filter(|u| !u.is_empty()).map(|u| u.trim_end_matches('/').to_string())
}

impl QdrantDouble {
    /// The in-memory double, or a checking proxy to `QDRANT_URL` when it is set.
    pub fn start() -> QdrantDouble {
        match real_qdrant_url() {
            Some(url) => Self::start_proxy(&url, std::env::var("QDRANT_API_KEY").ok()),
            None => Self::start_in_memory(),
        }
    }

    /// The in-memory double, also when `QDRANT_URL` is set.
    pub fn start_in_memory() -> QdrantDouble {
        Self::start_with(None)
    }

    /// A checking, fault-injecting proxy in front of the Qdrant at `url`.
    pub fn start_proxy(url: &str, api_key: Option<String>) -> QdrantDouble {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        Self::start_with(Some((url.trim_end_matches('/').to_string(), api_key, agent)))
    }

    fn start_with(upstream: Option<Upstream>) -> QdrantDouble {
        let shared = Arc::new(Shared { state: Mutex::default(), faults: Mutex::default(), upstream });
        let server = tiny_http::Server::http("127.0.0.1:0").expect("bind the double");
        let addr = server.server_addr().to_ip().expect("an IP address");
        let mut double = QdrantDouble { addr, shared, server: None };
        double.serve(server);
        double
    }

    fn serve(&mut self, server: tiny_http::Server) {
        let server = Arc::new(server);
        let (srv, shared) = (server.clone(), self.shared.clone());
        let handle = std::thread::spawn(move || {
            for request in srv.incoming_requests() {
                handle(&shared, request);
            }
        });
        self.server = Some((server, handle));
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// True when requests go on to a real Qdrant.
    pub fn is_proxy(&self) -> bool {
        self.shared.upstream.is_some()
    }

    /// Closes the port: connections are refused until [`restart`](Self::restart).
    pub fn stop(&mut self) {
        if let Some((server, handle)) = self.server.take() {
            server.unblock();
            handle.join().expect("the double's thread");
            drop(server);
        }
    }

    /// Listens again on the same port, with the same state.
    pub fn restart(&mut self) {
        assert!(self.server.is_none(), "the double is running");
        let mut last = None;
        for _ in 0..50 {
            match tiny_http::Server::http(self.addr) {
                Ok(server) => return self.serve(server),
                Err(e) => last = Some(e),
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("cannot listen on {} again: {last:?}", self.addr);
    }

    /// The next `count` requests, after `skip` good ones, answer `status`.
    pub fn fail(&self, skip: usize, count: usize, status: u16) {
        let mut f = self.shared.faults.lock().unwrap();
        (f.fail_skip, f.fail_next, f.fail_status) = (skip, count, status);
    }

    /// Every answer is delayed (after the change is applied, as a slow server would).
    pub fn delay(&self, d: Duration) {
        self.shared.faults.lock().unwrap().delay = d;
    }

    /// Bodies of more than `bytes` are refused (`None`: no limit) with `status`:
    /// 400 and the message a real Qdrant gives, or 413.
    pub fn max_body_answered(&self, bytes: Option<usize>, status: u16) {
        let mut f = self.shared.faults.lock().unwrap();
        f.max_body = bytes;
        f.too_large_status = status;
    }

    /// Bodies of more than `bytes` get 413 (`None`: no limit).
    pub fn max_body(&self, bytes: Option<usize>) {
        self.max_body_answered(bytes, 413);
    }

    /// Every upsert and set-payload request asked to wait for the change to be applied.
    pub fn all_writes_waited(&self) -> bool {
        self.seen().iter().filter(|s| is_write(s)).all(|s| s.query.iter().any(|(k, v)| k == "wait" && v == "true"))
    }

    /// Requests without this `api-key` header get 401.
    pub fn require_api_key(&self, key: Option<&str>) {
        self.shared.faults.lock().unwrap().api_key = key.map(str::to_string);
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.shared.state.lock().unwrap().seen.clone()
    }

    /// Requests that were not valid under the OpenAPI description.
    pub fn invalid(&self) -> Vec<String> {
        self.shared.state.lock().unwrap().invalid.clone()
    }

    /// Upsert requests answered 200, with the heights they carried.
    pub fn acknowledged_upserts(&self) -> Vec<Vec<i64>> {
        self.seen()
            .into_iter()
            .filter(|s| s.method == "PUT" && s.path.ends_with("/points") && s.status == 200)
            .map(|s| s.heights)
            .collect()
    }
}

impl Drop for QdrantDouble {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An upsert or a set payload: the requests that change points.
fn is_write(s: &Seen) -> bool {
    (s.method == "PUT" && s.path.ends_with("/points")) || (s.method == "POST" && s.path.ends_with("/points/payload"))
}

fn respond(request: tiny_http::Request, status: u16, body: &Value) {
    let header = tiny_http::Header::from_bytes("content-type", "application/json").expect("header");
    let response = tiny_http::Response::from_string(body.to_string()).with_status_code(status).with_header(header);
    let _ = request.respond(response);
}

fn error(message: &str) -> Value {
    json!({ "status": { "error": message }, "time": 0.0 })
}

fn ok(result: Value) -> Value {
    json!({ "result": result, "status": "ok", "time": 0.0001 })
}

fn handle(shared: &Shared, mut request: tiny_http::Request) {
    let method = request.method().as_str().to_string();
    let url = request.url().to_string();
    let (path, query_text) = url.split_once('?').unwrap_or((&url, ""));
    let query: Vec<(String, String)> = query_text
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k.to_string(), v.to_string())
        })
        .collect();
    let header = |name: &'static str| {
        request.headers().iter().find(|h| h.field.equiv(name)).map(|h| h.value.as_str().to_string())
    };
    let api_key = header("api-key");
    let content_type = header("content-type");
    let mut body = Vec::new();
    let _ = std::io::Read::read_to_end(request.as_reader(), &mut body);
    let parsed: Option<Value> = serde_json::from_slice(&body).ok();
    let heights: Vec<i64> = parsed
        .as_ref()
        .and_then(|b| b.get("points"))
        .and_then(Value::as_array)
        .map(|ps| ps.iter().filter_map(|p| p.pointer("/payload/height").and_then(Value::as_i64)).collect())
        .unwrap_or_default();
    let mut seen = Seen {
        method: method.clone(),
        path: path.to_string(),
        query: query.clone(),
        api_key: api_key.clone(),
        status: 0,
        heights,
    };

    let (max_body, status) = {
        let f = shared.faults.lock().unwrap();
        (f.max_body, f.too_large_status)
    };
    if let Some(max) = max_body.filter(|max| body.len() > *max) {
        seen.status = status;
        shared.state.lock().unwrap().seen.push(seen);
        let message = if status == 413 {
            "Payload too large".to_string()
        } else {
            // What Qdrant 1.x answers (actix-web's JSON limit, Qdrant's error body).
            format!("JSON payload ({} bytes) is larger than allowed (limit: {max} bytes).", body.len())
        };
        respond(request, status, &error(&message));
        return;
    }
    let mut check = spec().check(&method, path, &query, Some(&body));
    if check.is_ok() && !body.is_empty() && !content_type.as_deref().is_some_and(|c| c.starts_with("application/json"))
    {
        check = Err(format!("a JSON body with content-type {content_type:?}"));
    }
    if let Err(reason) = check {
        let reason = format!("{method} {url}: {reason}");
        seen.status = 400;
        {
            // Recorded before answering, so the client never outruns the record.
            let mut st = shared.state.lock().unwrap();
            st.invalid.push(reason.clone());
            st.seen.push(seen);
        }
        respond(request, 400, &error(&reason));
        return;
    }

    let (delay, fault) = {
        let mut f = shared.faults.lock().unwrap();
        let fault = if f.api_key.is_some() && f.api_key != api_key {
            Some((401, "Must provide an API key or an Authorization bearer token".to_string()))
        } else if f.fail_skip > 0 {
            f.fail_skip -= 1;
            None
        } else if f.fail_next > 0 {
            f.fail_next -= 1;
            Some((f.fail_status, "Service Unavailable: injected fault".to_string()))
        } else {
            None
        };
        (f.delay, fault)
    };
    let (status, answer) = match fault {
        Some((status, message)) => (status, error(&message)),
        None => match &shared.upstream {
            Some(up) => forward(up, &method, &url, &body),
            None => {
                let wait = query.iter().any(|(k, v)| k == "wait" && v == "true");
                apply(&mut shared.state.lock().unwrap(), &method, path, parsed, wait)
            }
        },
    };
    std::thread::sleep(delay);
    seen.status = status;
    shared.state.lock().unwrap().seen.push(seen);
    respond(request, status, &answer);
}

fn forward(up: &Upstream, method: &str, url: &str, body: &[u8]) -> (u16, Value) {
    let (base, key, agent) = up;
    let target = format!("{base}{url}");
    let req = ureq::http::Request::builder().method(method).uri(&target).header("content-type", "application/json");
    let req = match key {
        Some(k) => req.header("api-key", k),
        None => req,
    };
    let result = if body.is_empty() && matches!(method, "GET" | "DELETE") {
        agent.run(req.body(()).expect("request"))
    } else {
        agent.run(req.body(body.to_vec()).expect("request"))
    };
    match result {
        Ok(mut r) => {
            let status = r.status().as_u16();
            let text = r.body_mut().read_to_string().unwrap_or_default();
            (status, serde_json::from_str(&text).unwrap_or_else(|_| error(&text)))
        }
        Err(e) => (502, error(&format!("upstream {base}: {e}"))),
    }
}

/// The in-memory Qdrant: the subset of behaviour the sync relies on. Writes
/// answer `completed` only with `wait=true`, `acknowledged` otherwise (as
/// Qdrant does: queued, not yet applied).
fn apply(st: &mut State, method: &str, path: &str, body: Option<Value>, wait: bool) -> (u16, Value) {
    let write_status = if wait { "completed" } else { "acknowledged" };
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let body = body.unwrap_or(Value::Null);
    let not_found = |name: &str| (404, error(&format!("Not found: Collection `{name}` doesn't exist!")));
    match (method, segs.as_slice()) {
        ("GET", ["collections", name]) => match st.collections.get(*name) {
            None => not_found(name),
            Some(c) => (
                200,
                ok(json!({
                    "status": "green", "optimizer_status": "ok", "segments_count": 1,
                    "points_count": c.points.len(), "indexed_vectors_count": 0, "payload_schema": {},
                    "config": { "params": { "vectors": { "size": c.size, "distance": c.distance } } }
                })),
            ),
        },
        ("PUT", ["collections", name]) => {
            if st.collections.contains_key(*name) {
                return (409, error(&format!("Wrong input: Collection `{name}` already exists!")));
            }
            let Some(vectors) = body.get("vectors").filter(|v| v.get("size").is_some()) else {
                return (400, error("the double supports one unnamed vector per collection"));
            };
            st.collections.insert(
                name.to_string(),
                Collection {
                    size: vectors["size"].as_u64().unwrap_or(0),
                    distance: vectors["distance"].as_str().unwrap_or("").to_string(),
                    points: BTreeMap::new(),
                },
            );
            (200, ok(json!(true)))
        }
        ("DELETE", ["collections", name]) => (200, ok(json!(st.collections.remove(*name).is_some()))),
        (_, ["collections", name, "points", ..]) if !st.collections.contains_key(*name) => not_found(name),
        ("PUT", ["collections", name, "points"]) => {
            let c = st.collections.get_mut(*name).expect("checked");
            let Some(points) = body.get("points").and_then(Value::as_array) else {
                return (400, error("the double supports the list form of upsert only"));
            };
            for p in points {
                let vector: Vec<f64> =
                    p["vector"].as_array().map(|v| v.iter().filter_map(Value::as_f64).collect()).unwrap_or_default();
                if vector.len() as u64 != c.size {
                    return (
                        400,
                        error(&format!(
                            "Wrong input: Vector dimension error: expected dim: {}, got {}",
                            c.size,
                            vector.len()
                        )),
                    );
                }
            }
            for p in points {
                let vector =
                    p["vector"].as_array().map(|v| v.iter().filter_map(Value::as_f64).collect()).unwrap_or_default();
                let payload = p.get("payload").and_then(Value::as_object).cloned().unwrap_or_default();
                c.points.insert(p["id"].to_string(), (p["id"].clone(), vector, payload));
            }
            (200, ok(json!({ "operation_id": 1, "status": write_status })))
        }
        ("POST", ["collections", name, "points", "payload"]) => {
            let c = st.collections.get_mut(*name).expect("checked");
            let add = body["payload"].as_object().cloned().unwrap_or_default();
            for id in body["points"].as_array().cloned().unwrap_or_default() {
                if let Some((_, _, payload)) = c.points.get_mut(&id.to_string()) {
                    payload.extend(add.clone());
                }
            }
            (200, ok(json!({ "operation_id": 2, "status": write_status })))
        }
        ("POST", ["collections", name, "points", "count"]) => {
            (200, ok(json!({ "count": st.collections[*name].points.len() })))
        }
        ("POST", ["collections", name, "points", "scroll"]) => {
            let c = &st.collections[*name];
            let limit = body.get("limit").and_then(Value::as_u64).unwrap_or(10) as usize;
            let offset = body.get("offset").filter(|o| !o.is_null()).map(Value::to_string);
            let mut iter = c.points.range(offset.unwrap_or_default()..);
            let points: Vec<Value> = iter
                .by_ref()
                .take(limit)
                .map(|(_, (id, _, payload))| json!({ "id": id, "payload": payload }))
                .collect();
            let next = iter.next().map(|(_, (id, _, _))| id.clone()).unwrap_or(Value::Null);
            (200, ok(json!({ "points": points, "next_page_offset": next })))
        }
        ("POST", ["collections", name, "points", "query"]) => {
            let c = &st.collections[*name];
            let q: Vec<f64> =
                body["query"].as_array().map(|v| v.iter().filter_map(Value::as_f64).collect()).unwrap_or_default();
            let limit = body.get("limit").and_then(Value::as_u64).unwrap_or(10) as usize;
            let must = body.pointer("/filter/must").and_then(Value::as_array).cloned().unwrap_or_default();
            let passes = |payload: &Map<String, Value>| {
                must.iter().all(|m| {
                    // Qdrant's match: equal, or, for an array, one element equal.
                    let key = m["key"].as_str().unwrap_or("");
                    let want = &m["match"]["value"];
                    match payload.get(key) {
                        Some(Value::Array(items)) => items.contains(want),
                        Some(v) => v == want,
                        None => false,
                    }
                })
            };
            let mut scored: Vec<(f64, &Value, &Map<String, Value>)> = c
                .points
                .values()
                .filter(|(_, _, payload)| passes(payload))
                .map(|(id, v, payload)| (score(&c.distance, &q, v), id, payload))
                .collect();
            let higher_is_better = matches!(c.distance.as_str(), "Cosine" | "Dot");
            scored.sort_by(|a, b| if higher_is_better { b.0.total_cmp(&a.0) } else { a.0.total_cmp(&b.0) });
            let points: Vec<Value> = scored
                .into_iter()
                .take(limit)
                .map(|(s, id, payload)| json!({ "id": id, "version": 0, "score": s, "payload": payload }))
                .collect();
            (200, ok(json!({ "points": points })))
        }
        _ => (400, error(&format!("the double does not implement {method} {path}"))),
    }
}

fn score(distance: &str, a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
    match distance {
        "Cosine" => dot / (norm(a) * norm(b)).max(f64::MIN_POSITIVE),
        "Euclid" => a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f64>().sqrt(),
        "Manhattan" => a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum(),
        _ => dot,
    }
}
