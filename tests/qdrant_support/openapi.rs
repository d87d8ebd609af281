//! Checks HTTP requests against Qdrant's OpenAPI 3 description: the path and
//! method must be declared, every query parameter declared and of its type,
//! and the JSON body valid under the operation's request schema.
//!
//! OpenAPI 3.0 schemas are not JSON Schema; they are converted first:
//! `nullable: true` becomes a `null` alternative, the integer formats
//! (`uint`, `uint8`, `uint32`, `uint64`, `int64`) become range constraints,
//! `float`/`double` are dropped, and objects that list `properties` without
//! saying otherwise get `additionalProperties: false`, so a misspelt key is an
//! error here rather than silently ignored.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use serde_json::{Map, Value, json};

/// The in-repository copy of Qdrant's API description.
pub fn spec_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/qdrant-openapi-v1.18.json")
}

pub struct OpenApi {
    paths: Vec<(Vec<String>, String, Value)>,
    components: Value,
    validators: Mutex<HashMap<String, std::sync::Arc<jsonschema::Validator>>>,
}

impl OpenApi {
    pub fn load() -> OpenApi {
        let text = std::fs::read_to_string(spec_path()).expect("tests/data/qdrant-openapi-v1.18.json");
        let doc: Value = serde_json::from_str(&text).expect("the OpenAPI file is JSON");
        let mut components = doc["components"].clone();
        if let Some(schemas) = components.get_mut("schemas").and_then(Value::as_object_mut) {
            for schema in schemas.values_mut() {
                convert(schema);
            }
        }
        let paths = doc["paths"]
            .as_object()
            .expect("paths")
            .iter()
            .map(|(template, item)| {
                let segments = template.trim_start_matches('/').split('/').map(str::to_string).collect();
                (segments, template.clone(), item.clone())
            })
            .collect();
        OpenApi { paths, components, validators: Mutex::new(HashMap::new()) }
    }

    /// The declared path template that matches `path`, preferring literal segments.
    pub fn route(&self, path: &str) -> Option<(&str, &Value)> {
        let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let mut best: Option<(usize, &str, &Value)> = None;
        for (tmpl, template, item) in &self.paths {
            if tmpl.len() != segs.len() {
                continue;
            }
            let mut literal = 0;
            let ok = tmpl.iter().zip(&segs).all(|(t, s)| {
                if t.starts_with('{') {
                    !s.is_empty()
                } else if t == s {
                    literal += 1;
                    true
                } else {
                    false
                }
            });
            if ok && best.is_none_or(|(l, _, _)| literal > l) {
                best = Some((literal, template, item));
            }
        }
        best.map(|(_, t, i)| (t, i))
    }

    /// `Err(reason)` when the request is not valid under the description.
    pub fn check(
        &self,
        method: &str,
        path: &str,
        query: &[(String, String)],
        body: Option<&[u8]>,
    ) -> Result<String, String> {
        let (template, item) = self.route(path).ok_or_else(|| format!("no path {path} in the API"))?;
        let op = item
            .get(method.to_ascii_lowercase())
            .ok_or_else(|| format!("{method} is not an operation of {template}"))?;
        let params = op.get("parameters").and_then(Value::as_array).cloned().unwrap_or_default();
        for (name, value) in query {
            let param = params
                .iter()
                .find(|p| p["in"] == "query" && p["name"] == name.as_str())
                .ok_or_else(|| format!("query parameter {name:?} is not declared for {method} {template}"))?;
            let schema = &param["schema"];
            let resolved = self.resolve(schema);
            let instance = match resolved.get("type").and_then(Value::as_str) {
                Some("boolean") => match value.as_str() {
                    "true" => json!(true),
                    "false" => json!(false),
                    _ => return Err(format!("query parameter {name}={value:?} is not a boolean")),
                },
                Some("integer") => {
                    json!(
                        value
                            .parse::<i64>()
                            .map_err(|_| format!("query parameter {name}={value:?} is not an integer"))?
                    )
                }
                _ => json!(value),
            };
            self.validate(&format!("{method} {template} ?{name}"), schema, &instance)?;
        }
        for p in &params {
            if p["in"] == "query" && p["required"] == true && !query.iter().any(|(n, _)| p["name"] == n.as_str()) {
                return Err(format!("required query parameter {} missing", p["name"]));
            }
        }
        let body_schema = op.pointer("/requestBody/content/application~1json/schema");
        match (body_schema, body) {
            (None, Some(b)) if !b.is_empty() => Err(format!("{method} {template} takes no body")),
            (Some(schema), Some(b)) if !b.is_empty() => {
                let instance: Value = serde_json::from_slice(b).map_err(|e| format!("the body is not JSON: {e}"))?;
                self.validate(&format!("{method} {template} body"), schema, &instance)?;
                Ok(template.to_string())
            }
            (Some(_), _) if op.pointer("/requestBody/required") == Some(&json!(true)) => {
                Err(format!("{method} {template} needs a body"))
            }
            _ => Ok(template.to_string()),
        }
    }

    fn resolve<'a>(&'a self, schema: &'a Value) -> &'a Value {
        match schema.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix("#/components/schemas/")) {
            Some(name) => &self.components["schemas"][name],
            None => schema,
        }
    }

    fn validate(&self, key: &str, schema: &Value, instance: &Value) -> Result<(), String> {
        let validator = {
            let mut cache = self.validators.lock().unwrap();
            match cache.get(key) {
                Some(v) => v.clone(),
                None => {
                    let mut root = schema.clone();
                    convert(&mut root);
                    let mut root = match root {
                        Value::Object(m) => m,
                        other => Map::from_iter([("allOf".to_string(), json!([other]))]),
                    };
                    root.insert("components".into(), self.components.clone());
                    let v = jsonschema::options()
                        .with_draft(jsonschema::Draft::Draft202012)
                        .should_validate_formats(true)
                        .build(&Value::Object(root))
                        .map_err(|e| format!("cannot compile the schema of {key}: {e}"))?;
                    let v = std::sync::Arc::new(v);
                    cache.insert(key.to_string(), v.clone());
                    v
                }
            }
        };
        let errors: Vec<String> =
            validator.iter_errors(instance).take(3).map(|e| format!("{} at {}", e, e.instance_path())).collect();
        if errors.is_empty() { Ok(()) } else { Err(format!("{key}: {}", errors.join("; "))) }
    }
}

/// OpenAPI 3.0 schema -> JSON Schema (2020-12), in place; see the module docs.
pub fn convert(schema: &mut Value) {
    let Value::Object(m) = schema else { return };
    for key in ["anyOf", "oneOf", "allOf", "prefixItems"] {
        if let Some(Value::Array(list)) = m.get_mut(key) {
            list.iter_mut().for_each(convert);
        }
    }
    for key in ["items", "not", "additionalProperties"] {
        if let Some(s) = m.get_mut(key) {
            convert(s);
        }
    }
    if let Some(Value::Object(props)) = m.get_mut("properties") {
        props.values_mut().for_each(convert);
    }
    if let Some(Value::String(format)) = m.get("format").cloned() {
        let range: Option<(u64, Option<u64>)> = match format.as_str() {
            "uint" | "uint64" => Some((0, None)),
            "uint32" => Some((0, Some(u32::MAX as u64))),
            "uint16" => Some((0, Some(u16::MAX as u64))),
            "uint8" => Some((0, Some(u8::MAX as u64))),
            _ => None,
        };
        if let Some((min, max)) = range {
            let current = m.get("minimum").and_then(Value::as_f64).unwrap_or(f64::MIN);
            if current < min as f64 {
                m.insert("minimum".into(), json!(min));
            }
            if let Some(max) = max
                && m.get("maximum").is_none()
            {
                m.insert("maximum".into(), json!(max));
            }
        }
        if !matches!(format.as_str(), "uuid" | "date-time" | "uri") {
            m.remove("format");
        }
    }
    if m.get("type") == Some(&json!("object"))
        && m.contains_key("properties")
        && !m.contains_key("additionalProperties")
    {
        m.insert("additionalProperties".into(), json!(false));
    }
    if m.remove("nullable") == Some(json!(true)) {
        if let Some(t) = m.get("type").cloned() {
            let mut types = match t {
                Value::Array(a) => a,
                other => vec![other],
            };
            types.push(json!("null"));
            m.insert("type".into(), Value::Array(types));
            if let Some(Value::Array(e)) = m.get_mut("enum") {
                e.push(Value::Null);
            }
        } else if let Some(Value::Array(list)) = m.get_mut("anyOf") {
            list.push(json!({"type": "null"}));
        } else if m.contains_key("$ref") || m.contains_key("oneOf") {
            let inner: Map<String, Value> = std::mem::take(m);
            m.insert("anyOf".into(), json!([Value::Object(inner), {"type": "null"}]));
        } else {
            m.insert("type".into(), json!("null"));
        }
    }
}
