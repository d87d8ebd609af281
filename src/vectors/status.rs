//! `status` and `search`: read-only looks at the cursor, the chain and the
//! collection, and nearest-block queries through the same embedder.

use std::fmt;

use super::chain::{ChainDb, ChainError, PrunedKey};
use super::civil::civil_from_ns;
use super::config::SyncConfig;
use super::embed::Embedder;
use super::qdrant::{CollectionShape, Hit, QdrantClient, QdrantError};
use super::sync::consumer_names;

/// What `status` shows.
#[derive(Debug)]
pub struct Status {
    pub database: String,
    pub cursor: i64,
    pub pruned_cursor: PrunedKey,
    pub head: Option<i64>,
    pub pending: i64,
    pub url: String,
    pub collection: String,
    pub want: (usize, String),
    /// `Err` = unreachable or refused; `Ok(None)` = collection missing.
    pub qdrant: Result<Option<CollectionShape>, QdrantError>,
}

impl Status {
    /// Everything is fine: Qdrant reachable and the collection, if present, of the right shape.
    pub fn healthy(&self) -> bool {
        match &self.qdrant {
            Ok(Some(shape)) => {
                shape.vector.as_ref().is_some_and(|(s, d)| *s == self.want.0 as u64 && *d == self.want.1)
            }
            Ok(None) => true,
            Err(_) => false,
        }
    }
}

/// Gathers the status, opening the database read-only.
pub fn status(cfg: &SyncConfig, client: &QdrantClient) -> Result<Status, ChainError> {
    let chain = ChainDb::open_read_only(&cfg.database)?;
    let consumers = consumer_names(&cfg.collection);
    let cursor = chain.cursor(&consumers.blocks)?;
    Ok(Status {
        database: cfg.database.display().to_string(),
        cursor,
        pruned_cursor: chain.pruned_cursor(&consumers.pruned_ns, &consumers.pruned_height)?,
        head: chain.head()?,
        pending: chain.count_after(cursor)?,
        url: client.url().to_string(),
        collection: cfg.collection.clone(),
        want: (cfg.dimension, cfg.distance.to_string()),
        qdrant: client.collection(&cfg.collection, &mut |_| {}),
    })
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let head = self.head.map_or("none (empty chain)".to_string(), |h| h.to_string());
        writeln!(f, "database:       {}", self.database)?;
        writeln!(f, "chain head:     {head}")?;
        writeln!(f, "cursor:         {}", self.cursor)?;
        match self.pruned_cursor {
            PrunedKey::NONE => writeln!(f, "pruned cursor:  none")?,
            PrunedKey { pruned_ns, height } => {
                writeln!(f, "pruned cursor:  pruned at {}, height {height}", civil_from_ns(pruned_ns).rfc3339())?
            }
        }
        writeln!(f, "pending:        {}", self.pending)?;
        writeln!(f, "qdrant:         {}", self.url)?;
        let want = format!("size {} {}", self.want.0, self.want.1);
        match &self.qdrant {
            Err(QdrantError::Unreachable { reason, .. }) => writeln!(f, "reachable:      no, unreachable ({reason})"),
            // It answered: the URL is right, the key is not.
            Err(QdrantError::Refused { status: status @ (401 | 403), .. }) => {
                writeln!(f, "reachable:      unauthorised (Qdrant answered {status}: check api_key_file)")
            }
            Err(e) => writeln!(f, "reachable:      no ({e})"),
            Ok(None) => {
                writeln!(f, "reachable:      yes")?;
                writeln!(f, "collection:     {:?} missing (the sync creates it: {want})", self.collection)
            }
            Ok(Some(shape)) => {
                writeln!(f, "reachable:      yes")?;
                let points = shape.points_count.map_or("?".to_string(), |n| n.to_string());
                match &shape.vector {
                    Some((size, distance)) if *size == self.want.0 as u64 && *distance == self.want.1 => {
                        writeln!(f, "collection:     {:?} size {size} {distance}, {points} points", self.collection)
                    }
                    Some((size, distance)) => writeln!(
                        f,
                        "collection:     {:?} size {size} {distance} DOES NOT MATCH the config ({want}); \
                         use another collection name, or delete this one yourself",
                        self.collection
                    ),
                    None => writeln!(
                        f,
                        "collection:     {:?} uses named vectors, which the sync cannot fill; use another collection name",
                        self.collection
                    ),
                }
            }
        }
    }
}

/// Splits a search text into the text to embed and a payload filter: the
/// terms `pruned:true` and `pruned:false` (any case) select on the payload's
/// `pruned` flag, which changes after a block is sent and so is not part of
/// its vector; `under:/PATH` keeps the blocks that changed PATH or anything
/// below it (the payload's `paths`), and its path is embedded too.
pub fn search_filter(text: &str) -> (String, Option<serde_json::Value>) {
    let mut rest = Vec::new();
    let mut must = Vec::new();
    for term in text.split_whitespace() {
        let lower = term.to_ascii_lowercase();
        match lower.as_str() {
            "pruned:true" => must.push(serde_json::json!({ "key": "pruned", "match": { "value": true } })),
            "pruned:false" => must.push(serde_json::json!({ "key": "pruned", "match": { "value": false } })),
            _ => match term.strip_prefix("under:").filter(|p| p.starts_with('/')) {
                Some(path) => {
                    let path = if path.len() > 1 { path.trim_end_matches('/') } else { path };
                    must.push(serde_json::json!({ "key": "paths", "match": { "value": path } }));
                    rest.push(path);
                }
                None => rest.push(term),
            },
        }
    }
    let filter = (!must.is_empty()).then(|| serde_json::json!({ "must": must }));
    (rest.join(" "), filter)
}

/// Why `search` failed.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error(
        "collection {collection:?} does not exist at {url}: the sync creates it on its first run (`run` or `once`)"
    )]
    NoCollection { collection: String, url: String },
    #[error(transparent)]
    Qdrant(#[from] QdrantError),
}

/// Embeds `text` and returns the `limit` nearest blocks, newest first (only
/// pruned, or only unpruned ones with `pruned:true`/`pruned:false`; only
/// those that changed a path or below it with `under:/PATH`); `None` when the
/// text has nothing to embed.
pub fn search(
    client: &QdrantClient,
    embedder: &dyn Embedder,
    collection: &str,
    text: &str,
    limit: usize,
) -> Result<Option<Vec<Hit>>, SearchError> {
    let (text, filter) = search_filter(text);
    let Some(vector) = embedder.embed_text(&text) else { return Ok(None) };
    match client.query(collection, &vector, limit, filter, &mut |_| {}) {
        Ok(mut hits) => {
            // The nearest `limit`, newest first.
            hits.sort_by_key(|h| std::cmp::Reverse(h.payload.get("height").and_then(|v| v.as_i64())));
            Ok(Some(hits))
        }
        Err(e) if e.is_not_found() => {
            Err(SearchError::NoCollection { collection: collection.to_string(), url: client.url().to_string() })
        }
        Err(e) => Err(e.into()),
    }
}

/// One line per hit: score, height, UTC time, snapshot, pruned.
pub fn format_hit(hit: &Hit) -> String {
    let p = &hit.payload;
    let height = p.get("height").and_then(|v| v.as_i64()).map_or("?".to_string(), |h| h.to_string());
    let time = p.get("time_ns").and_then(|v| v.as_i64()).map_or("?".to_string(), |t| civil_from_ns(t).rfc3339());
    let snapshot = p.get("snapshot").and_then(|v| v.as_str()).unwrap_or("?");
    let pruned = if p.get("pruned").and_then(|v| v.as_bool()).unwrap_or(false) { " (pruned)" } else { "" };
    format!("{:.4}  height {height}  {time}  {snapshot}{pruned}", hit.score)
}
