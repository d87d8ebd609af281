//! Shared pieces of the Qdrant sync tests: the chain fixture, the Qdrant test
//! double (or a proxy to a real Qdrant when `QDRANT_URL` is set) and helpers
//! that read the collection back through the REST API.
#![allow(dead_code)]

pub mod chain;
pub mod openapi;
pub mod qdrant_double;

use std::collections::BTreeMap;
use std::time::Duration;

use ghostbridge::vectors::SyncConfig;
use serde_json::{Value, json};

pub use chain::Chain;
pub use qdrant_double::QdrantDouble;

/// A collection name no other test (or earlier run) uses.
pub fn unique_collection(tag: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("gbtest-{tag}-{}-{nanos}", std::process::id())
}

/// A test config: the chain, the double, a fresh collection.
pub fn config(chain: &Chain, double: &QdrantDouble, tag: &str) -> SyncConfig {
    let mut c = SyncConfig::with_database(&chain.path);
    c.url = double.url();
    c.collection = unique_collection(tag);
    c.interval = "50ms".parse().unwrap();
    c.max_backoff = "200ms".parse().unwrap();
    c.request_timeout = "5s".parse().unwrap();
    assert_eq!(ghostbridge::runtime::config::DaemonConfig::validate(&c), vec![]);
    c
}

/// Talks to the collection through the double (so these requests are checked
/// too); deletes, on drop, the collections the test created on a real Qdrant.
pub struct Probe {
    url: String,
    agent: ureq::Agent,
    created: Vec<String>,
}

impl Probe {
    pub fn new(double: &QdrantDouble) -> Probe {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        Probe { url: double.url(), agent, created: Vec::new() }
    }

    /// Remembers a collection the test (or the sync under test) created.
    pub fn owns(&mut self, collection: &str) {
        self.created.push(collection.to_string());
    }

    fn post(&self, path: &str, body: Value) -> Value {
        let mut r = self
            .agent
            .post(format!("{}{path}", self.url))
            .header("content-type", "application/json")
            .send(body.to_string())
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "POST {path}");
        serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap()
    }

    pub fn create(&mut self, collection: &str, size: u64, distance: &str) {
        self.owns(collection);
        let mut r = self
            .agent
            .put(format!("{}/collections/{collection}", self.url))
            .header("content-type", "application/json")
            .send(json!({ "vectors": { "size": size, "distance": distance } }).to_string())
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{}", r.body_mut().read_to_string().unwrap());
    }

    pub fn exists(&self, collection: &str) -> bool {
        let r = self.agent.get(format!("{}/collections/{collection}", self.url)).call().unwrap();
        r.status().as_u16() == 200
    }

    pub fn count(&self, collection: &str) -> u64 {
        self.post(&format!("/collections/{collection}/points/count"), json!({ "exact": true }))["result"]["count"]
            .as_u64()
            .unwrap()
    }

    /// Every point's payload, by height; panics if a height appears twice.
    pub fn payloads(&self, collection: &str) -> BTreeMap<i64, (Value, Value)> {
        let mut out = BTreeMap::new();
        let mut offset = Value::Null;
        loop {
            let mut body = json!({ "limit": 500, "with_payload": true, "with_vector": false });
            if !offset.is_null() {
                body["offset"] = offset.clone();
            }
            let v = self.post(&format!("/collections/{collection}/points/scroll"), body);
            for p in v["result"]["points"].as_array().unwrap() {
                let h = p["payload"]["height"].as_i64().unwrap();
                assert!(out.insert(h, (p["id"].clone(), p["payload"].clone())).is_none(), "height {h} twice");
            }
            offset = v["result"]["next_page_offset"].clone();
            if offset.is_null() {
                return out;
            }
        }
    }

    pub fn delete(&self, collection: &str) {
        let _ = self.agent.delete(format!("{}/collections/{collection}", self.url)).call();
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        // Only on a real Qdrant; the double's state dies with it.
        if let Some(real) = qdrant_double::real_qdrant_url() {
            let key = std::env::var("QDRANT_API_KEY").ok();
            for c in &self.created {
                let req = self.agent.delete(format!("{real}/collections/{c}"));
                let req = match &key {
                    Some(k) => req.header("api-key", k),
                    None => req,
                };
                let _ = req.call();
            }
        }
    }
}

/// Waits until `f` holds, up to `limit`.
pub fn wait_for(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}
