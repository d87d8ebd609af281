//! The Qdrant test double refuses what Qdrant's OpenAPI description does not
//! allow, so that "the sync sent no invalid request" means something.

#[path = "qdrant_support/mod.rs"]
mod support;

use serde_json::json;
use support::QdrantDouble;
use support::openapi::OpenApi;

#[test]
fn openapi_checks_paths_methods_query_and_bodies() {
    let api = OpenApi::load();
    let upsert = json!({ "points": [ { "id": 1, "vector": [0.5, 0.25], "payload": { "height": 1 } } ] }).to_string();
    let uuid_upsert =
        json!({ "points": [ { "id": "550e8400-e29b-41d4-a716-446655440000", "vector": [0.5] } ] }).to_string();
    let wait = vec![("wait".to_string(), "true".to_string())];
    let ok = [
        ("PUT", "/collections/c/points", wait.clone(), upsert.clone()),
        ("PUT", "/collections/c/points", vec![], uuid_upsert),
        ("PUT", "/collections/c", vec![], json!({ "vectors": { "size": 4, "distance": "Cosine" } }).to_string()),
        ("GET", "/collections/c", vec![], String::new()),
        ("POST", "/collections/c/points/count", vec![], json!({ "exact": true }).to_string()),
        (
            "POST",
            "/collections/c/points/payload",
            wait.clone(),
            json!({ "payload": { "pruned": true }, "points": [1] }).to_string(),
        ),
        (
            "POST",
            "/collections/c/points/query",
            vec![],
            json!({ "query": [0.1, 0.2], "limit": 3, "with_payload": true }).to_string(),
        ),
    ];
    for (method, path, query, body) in ok {
        api.check(method, path, &query, Some(body.as_bytes())).unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    }
    let bad = [
        ("GET", "/collection/c", vec![], String::new(), "no path"),
        ("PATCH", "/collections/c/points", vec![], upsert.clone(), "not an operation"),
        ("PUT", "/collections/c/points", vec![("wait".into(), "yes".into())], upsert.clone(), "not a boolean"),
        ("PUT", "/collections/c/points", vec![("wiat".into(), "true".into())], upsert.clone(), "not declared"),
        (
            "PUT",
            "/collections/c/points",
            vec![],
            json!({ "points": [ { "id": -1, "vector": [1.0] } ] }).to_string(),
            "body",
        ),
        (
            "PUT",
            "/collections/c/points",
            vec![],
            json!({ "points": [ { "id": "nope", "vector": [1.0] } ] }).to_string(),
            "body",
        ),
        (
            "PUT",
            "/collections/c/points",
            vec![],
            json!({ "points": [ { "id": 1, "vectors": [1.0] } ] }).to_string(),
            "body",
        ),
        (
            "PUT",
            "/collections/c",
            vec![],
            json!({ "vectors": { "size": 4, "distance": "cosine" } }).to_string(),
            "body",
        ),
        ("PUT", "/collections/c", vec![], json!({ "vectors": { "size": 0, "distance": "Dot" } }).to_string(), "body"),
        ("POST", "/collections/c/points/query", vec![], json!({ "query": [0.1], "limit": 0 }).to_string(), "body"),
        ("POST", "/collections/c/points/count", vec![], "{not json".to_string(), "not JSON"),
        ("GET", "/collections/c", vec![], "{}".to_string(), "takes no body"),
    ];
    for (method, path, query, body, needle) in bad {
        let err = api.check(method, path, &query, Some(body.as_bytes())).expect_err(&format!("{method} {path} {body}"));
        assert!(err.contains(needle), "{method} {path} {body}: {err}");
    }
}

#[test]
fn nullable_and_formats_are_understood() {
    let api = OpenApi::load();
    // `shard_key: null` is allowed (nullable), a float vector is fine, an
    // operation id beyond u32 is fine for uint64.
    let body = json!({ "points": [ { "id": 4_294_967_296u64, "vector": [0.5], "payload": null } ], "shard_key": null });
    api.check("PUT", "/collections/c/points", &[], Some(body.to_string().as_bytes())).unwrap();
    // replication_factor is uint32 with minimum 1.
    let body = json!({ "vectors": { "size": 4, "distance": "Dot" }, "replication_factor": 0 });
    assert!(api.check("PUT", "/collections/c", &[], Some(body.to_string().as_bytes())).is_err());
}

#[test]
fn the_double_answers_invalid_requests_with_400_and_records_them() {
    let double = QdrantDouble::start();
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let r = agent
        .put(format!("{}/collections/x?wait=maybe", double.url()))
        .header("content-type", "application/json")
        .send(json!({ "vectors": { "size": 4, "distance": "Dot" } }).to_string())
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(double.invalid().len(), 1, "{:?}", double.invalid());
    let r = agent.put(format!("{}/collections/x", double.url())).send("{}".to_string()).unwrap();
    assert_eq!(r.status().as_u16(), 400, "a JSON body needs content-type application/json");
    assert_eq!(double.invalid().len(), 2);
}

#[test]
fn the_in_repository_openapi_copy_matches_the_shared_one() {
    let shared = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/qdrant/openapi-v1.18.json");
    match std::fs::read(&shared) {
        Ok(bytes) => assert_eq!(bytes, std::fs::read(support::openapi::spec_path()).unwrap(), "{}", shared.display()),
        Err(_) => eprintln!("SKIPPED (no {}): the in-repository copy is used alone", shared.display()),
    }
}

#[test]
fn the_double_completes_writes_only_with_wait_true_and_refuses_large_bodies() {
    let double = QdrantDouble::start();
    if double.is_proxy() {
        eprintln!("SKIPPED (QDRANT_URL is set): this checks the in-memory double itself");
        return;
    }
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let send = |method: &str, path: &str, body: serde_json::Value| {
        let url = format!("{}{path}", double.url());
        let req = if method == "PUT" { agent.put(&url) } else { agent.post(&url) };
        let mut r = req.header("content-type", "application/json").send(body.to_string()).unwrap();
        let status = r.status().as_u16();
        (status, serde_json::from_str::<serde_json::Value>(&r.body_mut().read_to_string().unwrap()).unwrap())
    };
    send("PUT", "/collections/w", json!({ "vectors": { "size": 2, "distance": "Dot" } }));
    let points = json!({ "points": [ { "id": 1, "vector": [0.5, 0.5], "payload": { "height": 1 } } ] });
    let flag = json!({ "payload": { "pruned": true }, "points": [1] });
    for (method, path, body) in
        [("PUT", "/collections/w/points", &points), ("POST", "/collections/w/points/payload", &flag)]
    {
        for (query, status) in [("", "acknowledged"), ("?wait=false", "acknowledged"), ("?wait=true", "completed")] {
            let (code, answer) = send(method, &format!("{path}{query}"), body.clone());
            assert_eq!((code, answer["result"]["status"].as_str()), (200, Some(status)), "{method} {path}{query}");
        }
    }
    assert!(!double.all_writes_waited());
    double.max_body(Some(20));
    let (code, _) = send("PUT", "/collections/w/points?wait=true", points.clone());
    assert_eq!(code, 413);
    assert!(double.invalid().is_empty(), "{:?}", double.invalid());
}
