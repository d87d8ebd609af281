//! A small blocking client for the parts of Qdrant's REST API the sync uses:
//! collection info and creation, upsert, set payload, count and query.
//! Errors are split into transient ones (unreachable, timeouts, 5xx: retry
//! later) and permanent ones (the request was refused: fix something first).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::config::Distance;

/// A point ID as Qdrant takes it: an unsigned integer or a UUID.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PointId {
    Num(u64),
    Uuid(uuid::Uuid),
}

impl PointId {
    fn to_json(&self) -> Value {
        match self {
            PointId::Num(n) => json!(n),
            PointId::Uuid(u) => json!(u.to_string()),
        }
    }
}

/// One point to upsert.
#[derive(Debug, Clone)]
pub struct Point {
    pub id: PointId,
    pub vector: Vec<f32>,
    pub payload: serde_json::Map<String, Value>,
}

/// The shape of an existing collection's (single, unnamed) vector.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectionShape {
    /// `None` when the collection uses named vectors, which the sync cannot fill.
    pub vector: Option<(u64, String)>,
    pub points_count: Option<u64>,
}

/// One search hit.
#[derive(Debug, Clone)]
pub struct Hit {
    pub id: Value,
    pub score: f64,
    pub payload: Value,
}

#[derive(Debug, thiserror::Error)]
pub enum QdrantError {
    #[error("Qdrant at {url} is unreachable: {reason} (check that Qdrant runs and that `url` points at it)")]
    Unreachable { url: String, reason: String },
    #[error("Qdrant answered {method} {path} with HTTP {status}: {message}")]
    Server { method: &'static str, path: String, status: u16, message: String },
    #[error("Qdrant refused {method} {path} with HTTP {status}: {message}")]
    Refused { method: &'static str, path: String, status: u16, message: String },
    #[error("Qdrant's answer to {method} {path} was not understood: {reason}")]
    BadAnswer { method: &'static str, path: String, reason: String },
}

impl QdrantError {
    /// True when Qdrant says the collection (or the path) does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, QdrantError::Refused { status: 404, .. })
    }

    /// True when Qdrant refused the request as too large: HTTP 413, or the 400
    /// a real Qdrant answers ("JSON payload (N bytes) is larger than allowed
    /// (limit: M bytes)", from its `service.max_request_size_mb`).
    pub fn is_too_large(&self) -> bool {
        match self {
            QdrantError::Refused { status: 413, .. } => true,
            QdrantError::Refused { status: 400, message, .. } => {
                let m = message.to_ascii_lowercase();
                m.contains("larger than allowed") || m.contains("payload too large") || m.contains("size limit")
            }
            _ => false,
        }
    }

    /// True when the connection broke before an answer came: Qdrant down, or a
    /// body too large that the server stopped reading (it resets the connection).
    pub fn is_connection_lost(&self) -> bool {
        matches!(self, QdrantError::Unreachable { .. })
    }

    /// True for failures that may pass by themselves: retry with back-off.
    pub fn is_transient(&self) -> bool {
        match self {
            QdrantError::Unreachable { .. } | QdrantError::Server { .. } => true,
            // 408 timeout, 429 rate limited: the server asks to come back later.
            QdrantError::Refused { status, .. } => matches!(status, 408 | 429),
            QdrantError::BadAnswer { .. } => false,
        }
    }
}

/// A connection pool to one Qdrant server.
#[derive(Clone)]
pub struct QdrantClient {
    agent: ureq::Agent,
    base: String,
    api_key: Option<String>,
}

impl std::fmt::Debug for QdrantClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("QdrantClient").field("base", &self.base).field("api_key", &self.api_key.is_some()).finish()
    }
}

/// What a finished request reports, for the latency metric.
pub type Observe<'a> = &'a mut dyn FnMut(Duration);

impl QdrantClient {
    /// `url` is `http://HOST[:PORT][/PREFIX]`; `timeout` bounds each request as a whole.
    pub fn new(url: &str, api_key: Option<String>, timeout: Duration) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .timeout_connect(Some(timeout.min(Duration::from_secs(3))))
            .user_agent(concat!("ghostbridge-qdrant-sync/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        QdrantClient { agent, base: url.trim_end_matches('/').to_string(), api_key }
    }

    pub fn url(&self) -> &str {
        &self.base
    }

    /// Sends one request and returns the parsed body of a 2xx answer;
    /// `Ok(None)` for 404 when `allow_404`.
    fn request(
        &self,
        method: &'static str,
        path: &str,
        body: Option<&Value>,
        allow_404: bool,
        observe: Observe<'_>,
    ) -> Result<Option<Value>, QdrantError> {
        let url = format!("{}{}", self.base, path);
        let started = Instant::now();
        let unreachable = |e: ureq::Error| QdrantError::Unreachable { url: self.base.clone(), reason: e.to_string() };
        let result = match (method, body) {
            ("GET", _) => self.with_key(self.agent.get(&url)).call(),
            ("DELETE", _) => self.with_key(self.agent.delete(&url)).call(),
            (_, body) => {
                let text = body.map(Value::to_string).unwrap_or_default();
                let req = match method {
                    "PUT" => self.agent.put(&url),
                    "PATCH" => self.agent.patch(&url),
                    _ => self.agent.post(&url),
                };
                self.with_key(req).header("content-type", "application/json").send(text.as_str())
            }
        };
        let mut response = match result {
            Ok(r) => r,
            Err(e) => {
                observe(started.elapsed());
                return Err(unreachable(e));
            }
        };
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string();
        observe(started.elapsed());
        let text = text.map_err(unreachable)?;
        let parsed: Option<Value> = serde_json::from_str(&text).ok();
        let message = || match parsed.as_ref().and_then(|v| v.pointer("/status/error")).and_then(Value::as_str) {
            Some(m) => m.to_string(),
            None => text.chars().take(300).collect(),
        };
        let path = path.to_string();
        match status {
            200..=299 => match parsed {
                Some(v) => Ok(Some(v)),
                None => Err(QdrantError::BadAnswer { method, path, reason: "the body is not JSON".into() }),
            },
            404 if allow_404 => Ok(None),
            500..=599 => Err(QdrantError::Server { method, path, status, message: message() }),
            401 | 403 => Err(QdrantError::Refused {
                method,
                path,
                status,
                message: format!("{} (set api_key_file to a file holding Qdrant's API key)", message()),
            }),
            _ => Err(QdrantError::Refused { method, path, status, message: message() }),
        }
    }

    fn with_key<B>(&self, req: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.api_key {
            Some(key) => req.header("api-key", key),
            None => req,
        }
    }

    /// `GET /collections/{name}`: `None` when it does not exist.
    pub fn collection(&self, name: &str, observe: Observe<'_>) -> Result<Option<CollectionShape>, QdrantError> {
        let path = format!("/collections/{name}");
        let Some(v) = self.request("GET", &path, None, true, observe)? else { return Ok(None) };
        let vectors = v.pointer("/result/config/params/vectors").ok_or_else(|| QdrantError::BadAnswer {
            method: "GET",
            path: path.clone(),
            reason: "no result.config.params.vectors".into(),
        })?;
        let vector =
            match (vectors.get("size").and_then(Value::as_u64), vectors.get("distance").and_then(Value::as_str)) {
                (Some(size), Some(distance)) => Some((size, distance.to_string())),
                _ => None,
            };
        let points_count = v.pointer("/result/points_count").and_then(Value::as_u64);
        Ok(Some(CollectionShape { vector, points_count }))
    }

    /// `PUT /collections/{name}` with one unnamed vector. `Ok(false)` when it
    /// already existed (created meanwhile by someone else).
    pub fn create_collection(
        &self,
        name: &str,
        size: usize,
        distance: Distance,
        observe: Observe<'_>,
    ) -> Result<bool, QdrantError> {
        let body = json!({ "vectors": { "size": size, "distance": distance.as_str() } });
        match self.request("PUT", &format!("/collections/{name}"), Some(&body), false, observe) {
            Ok(_) => Ok(true),
            // Created meanwhile by someone else: 409 (older servers: 400 "already exists").
            Err(QdrantError::Refused { status: 409, .. }) => Ok(false),
            Err(QdrantError::Refused { status: 400, message, .. }) if message.contains("already exists") => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `PUT /collections/{name}/points?wait=true`: returns once Qdrant applied it.
    pub fn upsert(&self, name: &str, points: &[Point], observe: Observe<'_>) -> Result<(), QdrantError> {
        let points: Vec<Value> =
            points.iter().map(|p| json!({ "id": p.id.to_json(), "vector": p.vector, "payload": p.payload })).collect();
        let path = format!("/collections/{name}/points?wait=true");
        let v = self.request("PUT", &path, Some(&json!({ "points": points })), false, observe)?;
        expect_completed(v, "PUT", path)
    }

    /// `POST /collections/{name}/points/payload?wait=true`: merges `payload` into the points.
    pub fn set_payload(
        &self,
        name: &str,
        ids: &[PointId],
        payload: serde_json::Map<String, Value>,
        observe: Observe<'_>,
    ) -> Result<(), QdrantError> {
        let ids: Vec<Value> = ids.iter().map(PointId::to_json).collect();
        let path = format!("/collections/{name}/points/payload?wait=true");
        let v = self.request("POST", &path, Some(&json!({ "payload": payload, "points": ids })), false, observe)?;
        expect_completed(v, "POST", path)
    }

    /// `POST /collections/{name}/points/count` (exact).
    pub fn count(&self, name: &str, observe: Observe<'_>) -> Result<u64, QdrantError> {
        let path = format!("/collections/{name}/points/count");
        let v = self.request("POST", &path, Some(&json!({ "exact": true })), false, observe)?;
        v.as_ref()
            .and_then(|v| v.pointer("/result/count"))
            .and_then(Value::as_u64)
            .ok_or_else(|| QdrantError::BadAnswer { method: "POST", path, reason: "no result.count".into() })
    }

    /// `POST /collections/{name}/points/scroll`: one page of up to `limit`
    /// points from `offset` (the first page when `None`), with the payload keys
    /// `keys` only; returns the points' payloads and the next page's offset.
    pub fn scroll(
        &self,
        name: &str,
        offset: Option<Value>,
        limit: usize,
        keys: &[&str],
        observe: Observe<'_>,
    ) -> Result<(Vec<Value>, Option<Value>), QdrantError> {
        let path = format!("/collections/{name}/points/scroll");
        let mut body = json!({ "limit": limit.max(1), "with_payload": keys, "with_vector": false });
        if let Some(offset) = offset {
            body["offset"] = offset;
        }
        let v = self.request("POST", &path, Some(&body), false, observe)?;
        let result = v.as_ref().and_then(|v| v.get("result"));
        let points = result.and_then(|r| r.get("points")).and_then(Value::as_array).ok_or_else(|| {
            QdrantError::BadAnswer { method: "POST", path: path.clone(), reason: "no result.points".into() }
        })?;
        let payloads = points.iter().map(|p| p.get("payload").cloned().unwrap_or(Value::Null)).collect();
        let next = result.and_then(|r| r.get("next_page_offset")).filter(|o| !o.is_null()).cloned();
        Ok((payloads, next))
    }

    /// `POST /collections/{name}/points/query`: the `limit` nearest points, with
    /// payload, among those that pass `filter` (a Qdrant filter object) if given.
    pub fn query(
        &self,
        name: &str,
        vector: &[f32],
        limit: usize,
        filter: Option<Value>,
        observe: Observe<'_>,
    ) -> Result<Vec<Hit>, QdrantError> {
        let path = format!("/collections/{name}/points/query");
        let mut body = json!({ "query": vector, "limit": limit.max(1), "with_payload": true });
        if let Some(filter) = filter {
            body["filter"] = filter;
        }
        let v = self.request("POST", &path, Some(&body), false, observe)?;
        let points =
            v.as_ref().and_then(|v| v.pointer("/result/points")).and_then(Value::as_array).ok_or_else(|| {
                QdrantError::BadAnswer { method: "POST", path: path.clone(), reason: "no result.points".into() }
            })?;
        Ok(points
            .iter()
            .map(|p| Hit {
                id: p.get("id").cloned().unwrap_or(Value::Null),
                score: p.get("score").and_then(Value::as_f64).unwrap_or(f64::NAN),
                payload: p.get("payload").cloned().unwrap_or(Value::Null),
            })
            .collect())
    }
}

/// With `wait=true` Qdrant answers `completed` once the change is applied;
/// anything else is not an acknowledgement.
fn expect_completed(v: Option<Value>, method: &'static str, path: String) -> Result<(), QdrantError> {
    let status = v.as_ref().and_then(|v| v.pointer("/result/status")).and_then(Value::as_str);
    match status {
        Some("completed") => Ok(()),
        // Applied later, maybe: not an acknowledgement; retry (upserts are idempotent).
        Some(other) => Err(QdrantError::Server {
            method,
            path,
            status: 200,
            message: format!("operation status {other:?} instead of \"completed\""),
        }),
        None => Err(QdrantError::BadAnswer { method, path, reason: "no result.status".into() }),
    }
}
