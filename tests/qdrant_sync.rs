//! The Qdrant sync against the Qdrant test double (every request checked
//! against Qdrant's OpenAPI description), or against a real Qdrant when
//! `QDRANT_URL` is set: batches, cursor durability, idempotent replay, shape
//! mismatch, 5xx storms, outages, slow answers, pruned flags, API key.

#[path = "qdrant_support/mod.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ghostbridge::vectors::sync::{consumer_names, point_id};
use ghostbridge::vectors::{Distance, FeatureHashEmbedder, QdrantClient, SyncConfig, SyncError, Syncer};
use support::{Chain, Probe, QdrantDouble, config, wait_for};

fn syncer(cfg: &SyncConfig) -> Syncer {
    let client = QdrantClient::new(&cfg.url, cfg.api_key().unwrap(), cfg.request_timeout.as_duration());
    Syncer::new(cfg.clone(), client, Box::new(FeatureHashEmbedder::new(cfg.dimension))).unwrap()
}

/// Heights 0..n, each exactly once, with its own hash.
fn assert_all_blocks(probe: &Probe, chain: &Chain, collection: &str, n: i64) {
    let payloads = probe.payloads(collection);
    assert_eq!(payloads.keys().copied().collect::<Vec<_>>(), (0..n).collect::<Vec<_>>());
    assert_eq!(probe.count(collection), n as u64);
    for h in [0, n / 2, n - 1] {
        assert_eq!(payloads[&h].1["hash"], chain.hash_hex(h).as_str(), "height {h}");
    }
}

#[test]
fn sends_every_block_in_batches_of_at_most_batch() {
    let double = QdrantDouble::start();
    let mut probe = Probe::new(&double);
    let mut chain = Chain::new();
    chain.append(250);
    let digest = chain.blocks_digest();
    let mut cfg = config(&chain, &double, "batches");
    cfg.batch = 100;
    probe.owns(&cfg.collection);

    let report = syncer(&cfg).once().unwrap();
    assert_eq!((report.upserted, report.requests, report.cursor), (250, 3, 249));
    let sizes: Vec<usize> = double.acknowledged_upserts().iter().map(Vec::len).collect();
    assert_eq!(sizes, [100, 100, 50]);
    let sent: Vec<i64> = double.acknowledged_upserts().concat();
    assert_eq!(sent, (0..250).collect::<Vec<_>>(), "in order, each once");
    assert_all_blocks(&probe, &chain, &cfg.collection, 250);

    let payloads = probe.payloads(&cfg.collection);
    let (id, p) = &payloads[&7];
    assert_eq!(p["height"], 7);
    assert_eq!(p["pruned"], false);
    assert_eq!(p["time_ns"], support::chain::GENESIS_NS + 7_000_000_000);
    assert_eq!(p["prev_hash"], chain.hash_hex(6).as_str());
    assert!(p["snapshot"].as_str().unwrap().starts_with("overlay-"));
    assert_eq!(p.as_object().unwrap().len(), 6, "{p}");
    let expected_id = uuid::Uuid::new_v5(
        &uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, b"urn:ghostbridge:chain-block"),
        &hex::decode(chain.hash_hex(7)).unwrap(),
    );
    assert_eq!(id.as_str().unwrap(), expected_id.to_string());

    // Nothing pending: a second pass sends nothing.
    assert_eq!(syncer(&cfg).once().unwrap().requests, 0);
    assert_eq!(chain.blocks_digest(), digest, "the sync never writes blocks");
    assert_eq!(chain.cursor(&consumer_names(&cfg.collection).0), Some(249));
    assert!(double.invalid().is_empty(), "{:#?}", double.invalid());
}

#[test]
fn cursor_survives_an_error_mid_run_and_a_restart() {
    let double = QdrantDouble::start();
    let mut probe = Probe::new(&double);
    let mut chain = Chain::new();
    chain.append(250);
    let cfg = config(&chain, &double, "cursor");
    probe.owns(&cfg.collection);
    let consumer = consumer_names(&cfg.collection).0;

    // GET collection, PUT collection, first upsert succeed; the second upsert fails.
    double.fail(3, 1, 500);
    let err = syncer(&cfg).once().unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert!(err.to_string().contains("HTTP 500"), "{err}");
    assert_eq!(chain.cursor(&consumer), Some(99), "the cursor stops after the acknowledged batch");
    assert_eq!(probe.count(&cfg.collection), 100);

    // A new process (the old one "crashed") resumes after the cursor.
    let report = syncer(&cfg).once().unwrap();
    assert_eq!((report.upserted, report.cursor), (150, 249));
    let upserts = double.acknowledged_upserts();
    assert_eq!(upserts.iter().map(|u| u[0]).collect::<Vec<_>>(), [0, 100, 200]);
    assert_all_blocks(&probe, &chain, &cfg.collection, 250);
    assert!(double.invalid().is_empty(), "{:#?}", double.invalid());
}

#[test]
fn replay_after_a_cursor_reset_overwrites_and_never_duplicates() {
    let double = QdrantDouble::start();
    let mut probe = Probe::new(&double);
    let mut chain = Chain::new();
    chain.append(120);
    let cfg = config(&chain, &double, "replay");
    probe.owns(&cfg.collection);

    syncer(&cfg).once().unwrap();
    let before = probe.payloads(&cfg.collection);
    chain.delete_cursors();
    let report = syncer(&cfg).once().unwrap();
    assert_eq!(report.upserted, 120, "everything was sent again");
    assert_eq!(probe.count(&cfg.collection), 120);
    assert_eq!(probe.payloads(&cfg.collection), before, "same IDs, same payloads");

    // The user deletes the collection: it is created again and filled from the chain.
    probe.delete(&cfg.collection);
    chain.append(5);
    let report = syncer(&cfg).once().unwrap();
    assert_eq!(report.upserted, 125);
    assert_all_blocks(&probe, &chain, &cfg.collection, 125);
    assert!(double.invalid().is_empty(), "{:#?}", double.invalid());
}

#[test]
fn existing_collection_of_another_shape_stops_the_sync_with_a_fix() {
    let double = QdrantDouble::start();
    let mut probe = Probe::new(&double);
    let mut chain = Chain::new();
    chain.append(10);
    let mut cfg = config(&chain, &double, "shape");
    cfg.dimension = 8;
    cfg.distance = Distance::Cosine;
    probe.create(&cfg.collection, 16, "Dot");

    let err = syncer(&cfg).once().unwrap_err();
    assert!(matches!(err, SyncError::ShapeMismatch { .. }) && !err.is_transient(), "{err:?}");
    let msg = err.to_string();
    for needle in
        ["size 16 with distance Dot", "size 8 with distance Cosine", "new name", "never deletes", "curl -X DELETE"]
    {
        assert!(msg.contains(needle), "{needle:?} missing from: {msg}");
    }
    assert!(msg.contains(&cfg.collection), "{msg}");
    assert!(probe.exists(&cfg.collection), "the user's collection is still there");
    assert_eq!(probe.count(&cfg.collection), 0);
    assert!(double.seen().iter().all(|s| s.method != "DELETE"), "never deletes");
    assert_eq!(chain.cursor(&consumer_names(&cfg.collection).0), None);
    assert!(double.invalid().is_empty(), "{:#?}", double.invalid());
}

#[test]
fn storm_of_5xx_then_recovery_loses_and_duplicates_nothing() {
    let double = Arc::new(QdrantDouble::start());
    let mut probe = Probe::new(&double);
    let mut chain = Chain::new();
    chain.append(300);
    let mut cfg = config(&chain, &double, "storm");
    cfg.batch = 64;
    probe.owns(&cfg.collection);
    let consumer = consumer_names(&cfg.collection).0;

    // The collection exists; then 12 requests in a row answer 503.
    syncer(&cfg).ensure_collection().unwrap();
    double.fail(0, 12, 503);
    let stop = Arc::new(AtomicBool::new(false));
    let runner = {
        let (cfg, stop) = (cfg.clone(), stop.clone());
        std::thread::spawn(move || syncer(&cfg).run(&stop))
    };
    // Blocks keep coming during the storm.
    for _ in 0..10 {
        chain.append(7);
        std::thread::sleep(Duration::from_millis(30));
    }
    let head = chain.len() - 1;
    let caught_up = wait_for(Duration::from_secs(30), || chain.cursor(&consumer) == Some(head));
    stop.store(true, Ordering::Relaxed);
    runner.join().unwrap().unwrap();
    assert!(caught_up, "cursor {:?}, head {head}", chain.cursor(&consumer));

    let failed = double.seen().iter().filter(|s| s.status == 503).count();
    assert_eq!(failed, 12, "the storm was served");
    assert_all_blocks(&probe, &chain, &cfg.collection, head + 1);
    let sent: Vec<i64> = double.acknowledged_upserts().concat();
    assert_eq!(sent, (0..=head).collect::<Vec<_>>(), "each block acknowledged exactly once, in order");
    assert!(double.acknowledged_upserts().iter().all(|u| u.len() <= 64));
    assert!(double.invalid().is_empty(), "{:#?}", double.invalid());
}

#[test]
fn qdrant_down_then_up_and_slow_answers_lose_nothing() {
    let mut double = QdrantDouble::start();
    let mut probe = Probe::new(&double);
    let mut chain = Chain::new();
    chain.append(40);
    let mut cfg = config(&chain, &double, "down");
    cfg.request_timeout = "300ms".parse().unwrap();
    probe.owns(&cfg.collection);
    let consumer = consumer_names(&cfg.collection).0;
    syncer(&cfg).once().unwrap();

    // Down: the port is closed.
    double.stop();
    chain.append(40);
    let err = syncer(&cfg).once().unwrap_err();
    assert!(err.is_transient() && err.to_string().contains("unreachable"), "{err}");
    assert_eq!(chain.cursor(&consumer), Some(39));
    double.restart();

    // Slow: the upsert is applied but acknowledged after the client gave up.
    double.delay(Duration::from_millis(600));
    let err = syncer(&cfg).once().unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert_eq!(chain.cursor(&consumer), Some(39), "no acknowledgement, no cursor move");
    double.delay(Duration::ZERO);

    let report = syncer(&cfg).once().unwrap();
    assert_eq!((report.upserted, report.cursor), (40, 79));
    assert_all_blocks(&probe, &chain, &cfg.collection, 80);
    assert!(double.invalid().is_empty(), "{:#?}", double.invalid());
}

#[test]
fn pruned_flags_follow_the_snapshotter() {
    let double = QdrantDouble::start();
    let mut probe = Probe::new(&double);
    let mut chain = Chain::new();
    chain.append(50);
    let cfg = config(&chain, &double, "pruned");
    probe.owns(&cfg.collection);
    let (_, pruned_consumer) = consumer_names(&cfg.collection);

    assert_eq!(syncer(&cfg).once().unwrap().pruned_flags, 0);
    chain.prune_through(29);
    let report = syncer(&cfg).once().unwrap();
    assert_eq!((report.upserted, report.pruned_flags, report.requests), (0, 30, 1));
    assert_eq!(chain.cursor(&pruned_consumer), Some(29));
    let payloads = probe.payloads(&cfg.collection);
    for (h, (_, p)) in &payloads {
        assert_eq!(p["pruned"], *h <= 29, "height {h}");
    }
    assert_eq!(syncer(&cfg).once().unwrap().requests, 0, "flags are sent once");

    // Catching up on blocks already pruned sends no extra request.
    let mut cfg2 = config(&chain, &double, "pruned-catchup");
    cfg2.batch = 20;
    probe.owns(&cfg2.collection);
    let report = syncer(&cfg2).once().unwrap();
    assert_eq!((report.upserted, report.pruned_flags, report.requests), (50, 0, 3));
    assert_eq!(chain.cursor(&consumer_names(&cfg2.collection).1), Some(29));
    for (h, (_, p)) in probe.payloads(&cfg2.collection) {
        assert_eq!(p["pruned"], h <= 29, "height {h}");
    }
    assert!(double.invalid().is_empty(), "{:#?}", double.invalid());
}

#[test]
fn api_key_from_the_file_is_sent_as_a_header() {
    let double = QdrantDouble::start();
    let mut probe = Probe::new(&double);
    let mut chain = Chain::new();
    chain.append(5);
    let mut cfg = config(&chain, &double, "apikey");
    probe.owns(&cfg.collection);
    let key_file = chain.dir().join("qdrant-api-key");
    std::fs::write(&key_file, "k3y-for-tests\n").unwrap();
    double.require_api_key(Some("k3y-for-tests"));

    // Without the key: refused, and that is not something to retry.
    let err = syncer(&cfg).once().unwrap_err();
    assert!(!err.is_transient() && err.to_string().contains("401"), "{err}");
    assert!(err.to_string().contains("set api_key_file"), "{err}");

    cfg.api_key_file = Some(key_file);
    let before = double.seen().len();
    syncer(&cfg).once().unwrap();
    let seen = double.seen();
    assert!(seen.len() > before);
    assert!(seen[before..].iter().all(|s| s.api_key.as_deref() == Some("k3y-for-tests")));
    double.require_api_key(None);
    assert_eq!(probe.count(&cfg.collection), 5);
    assert!(double.invalid().is_empty(), "{:#?}", double.invalid());
}

#[test]
fn point_ids_are_stable_uuids_of_the_hash() {
    let mut chain = Chain::new();
    chain.append(2);
    let db = ghostbridge::vectors::chain::ChainDb::open(&chain.path).unwrap();
    let blocks = db.blocks_after(-1, 10).unwrap();
    assert_eq!(point_id(&blocks[0]), point_id(&blocks[0].clone()));
    assert_ne!(point_id(&blocks[0]), point_id(&blocks[1]));
}

#[test]
fn run_recreates_a_collection_deleted_under_it_and_restarts_a_replaced_chain() {
    let double = QdrantDouble::start();
    let mut probe = Probe::new(&double);
    let mut chain = Chain::new();
    chain.append(30);
    let cfg = config(&chain, &double, "vanished");
    probe.owns(&cfg.collection);
    let consumer = consumer_names(&cfg.collection).0;
    let stop = Arc::new(AtomicBool::new(false));
    let runner = {
        let (cfg, stop) = (cfg.clone(), stop.clone());
        std::thread::spawn(move || syncer(&cfg).run(&stop))
    };
    assert!(wait_for(Duration::from_secs(10), || chain.cursor(&consumer) == Some(29)));
    probe.delete(&cfg.collection);
    chain.append(10);
    assert!(wait_for(Duration::from_secs(10), || probe.exists(&cfg.collection) && probe.count(&cfg.collection) == 40));
    stop.store(true, Ordering::Relaxed);
    runner.join().unwrap().unwrap();
    assert_all_blocks(&probe, &chain, &cfg.collection, 40);

    // A replaced database: the cursor is beyond the new chain's head.
    let mut fresh = Chain::new();
    fresh.append(12);
    let mut cfg2 = cfg.clone();
    cfg2.database = fresh.path.clone();
    syncer(&cfg2).once().unwrap();
    let pruned = consumer_names(&cfg.collection).1;
    let mut db = ghostbridge::vectors::chain::ChainDb::open(&fresh.path).unwrap();
    db.set_cursors(&[(consumer.as_str(), 500), (pruned.as_str(), 500)]).unwrap();
    fresh.append(3);
    let report = syncer(&cfg2).once().unwrap();
    assert_eq!((report.upserted, report.cursor), (15, 14));
    assert!(double.invalid().is_empty(), "{:#?}", double.invalid());
}

#[test]
fn the_checking_proxy_forwards_to_an_upstream_qdrant() {
    // The path the tests take with QDRANT_URL set, with a second double as the upstream.
    let upstream = QdrantDouble::start();
    let proxy = QdrantDouble::start_proxy(&upstream.url(), None);
    assert!(proxy.is_proxy());
    let mut chain = Chain::new();
    chain.append(25);
    let cfg = config(&chain, &proxy, "proxy");
    proxy.fail(2, 1, 502);
    assert!(syncer(&cfg).once().unwrap_err().is_transient());
    let report = syncer(&cfg).once().unwrap();
    assert_eq!(report.cursor, 24);
    assert_eq!(Probe::new(&upstream).count(&cfg.collection), 25);
    assert_eq!(Probe::new(&proxy).count(&cfg.collection), 25);
    assert_eq!(upstream.acknowledged_upserts().concat(), (0..25).collect::<Vec<_>>());
    assert!(proxy.invalid().is_empty() && upstream.invalid().is_empty(), "{:#?}", proxy.invalid());
}
