//! The JSON Schema of the spec, derived from the model, and structural
//! validation of a host's TOML tree against it: every unknown key, wrong type,
//! missing key and malformed value becomes a diagnostic at its own span.

use serde_json::{Map, Value as Json, json};

use super::diagnostic::{Diagnostic, closest};
use super::model::{DURATION_PATTERN, FlakeInputs, HostSpec, PATTERN_HELP, SIZE_PATTERN};
use super::source::{Node, PathSeg};

/// The schema of one host (all keys of `[host]` and the sections), TOML-shaped.
pub fn host_schema() -> Json {
    toml_shaped(schemars::schema_for!(HostSpec).to_value())
}

/// The schema of `[flake]`.
pub fn flake_schema() -> Json {
    toml_shaped(schemars::schema_for!(FlakeInputs).to_value())
}

/// A schema together with its compiled validator, built once per process.
pub struct Compiled {
    pub schema: Json,
    validator: Result<jsonschema::Validator, String>,
}

impl Compiled {
    fn new(schema: Json) -> Self {
        let validator = jsonschema::validator_for(&schema).map_err(|e| e.to_string());
        Compiled { schema, validator }
    }
}

/// The compiled host schema.
pub fn host() -> &'static Compiled {
    static HOST: std::sync::OnceLock<Compiled> = std::sync::OnceLock::new();
    HOST.get_or_init(|| Compiled::new(host_schema()))
}

/// The compiled `[flake]` schema.
pub fn flake() -> &'static Compiled {
    static FLAKE: std::sync::OnceLock<Compiled> = std::sync::OnceLock::new();
    FLAKE.get_or_init(|| Compiled::new(flake_schema()))
}

/// The schema of a whole spec file, for editor completion: either a single host
/// (`[host]` plus top-level sections) or a fleet (`[defaults]` plus `[[hosts]]`).
pub fn file_schema() -> Json {
    let host = host_schema();
    let flake = flake_schema();
    let mut defs = host.get("$defs").cloned().unwrap_or_else(|| json!({}));
    super::migrate::relax_derived(&mut defs);
    if let (Some(defs), Some(fdefs)) = (defs.as_object_mut(), flake.get("$defs").and_then(Json::as_object)) {
        defs.extend(fdefs.clone());
    }
    let host_props = host.get("properties").cloned().unwrap_or_else(|| json!({}));
    let meta = ["name", "system", "state_version", "time_zone", "locale"];
    let mut single_props = Map::new();
    let mut host_table = Map::new();
    if let Some(props) = host_props.as_object() {
        for (k, v) in props {
            if meta.contains(&k.as_str()) {
                host_table.insert(k.clone(), v.clone());
            } else {
                single_props.insert(k.clone(), v.clone());
            }
        }
    }
    let mut flake_def = flake.clone();
    if let Some(o) = flake_def.as_object_mut() {
        o.remove("$defs");
        o.remove("$schema");
    }
    single_props.insert("flake".into(), flake_def.clone());
    single_props.insert(
        "host".into(),
        json!({"type": "object", "additionalProperties": false, "required": ["name", "state_version"],
               "properties": host_table, "description": "The host: name, system, state version, time zone, locale."}),
    );
    let mut host_entry = host.clone();
    if let Some(o) = host_entry.as_object_mut() {
        o.remove("$defs");
        o.remove("$schema");
        o.remove("title");
    }
    if let Some(o) = host_entry.as_object_mut() {
        // In a fleet, everything but the name may come from [defaults].
        o.insert("required".into(), json!(["name"]));
    }
    let mut defaults_entry = host_entry.clone();
    if let Some(o) = defaults_entry.as_object_mut() {
        o.remove("required");
        o.insert("description".into(), json!("Values every [[hosts]] entry starts from."));
    }
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "GhostBridge spec",
        "description": "One typed file describing a NixOS server (or a fleet), compiled by `ghostgen build`.",
        "oneOf": [
            {"type": "object", "additionalProperties": false, "required": ["host"], "properties": single_props},
            {"type": "object", "additionalProperties": false, "required": ["hosts"], "properties": {
                "flake": flake_def,
                "defaults": defaults_entry,
                "hosts": {"type": "array", "minItems": 1, "items": host_entry}
            }}
        ],
        "$defs": defs
    })
}

/// Removes `null` from the schema: TOML has no null, an absent key is "none".
fn toml_shaped(mut schema: Json) -> Json {
    strip_null(&mut schema);
    schema
}

fn strip_null(v: &mut Json) {
    match v {
        Json::Object(map) => {
            if let Some(Json::Array(types)) = map.get_mut("type") {
                types.retain(|t| t != "null");
                if types.len() == 1 {
                    let only = types[0].clone();
                    map.insert("type".into(), only);
                }
            }
            for key in ["anyOf", "oneOf"] {
                if let Some(Json::Array(branches)) = map.get_mut(key) {
                    branches.retain(|b| b.get("type") != Some(&json!("null")) && b.get("const") != Some(&Json::Null));
                    if branches.len() == 1 {
                        let only = branches.remove(0);
                        map.remove(key);
                        if let Json::Object(o) = only {
                            for (k, val) in o {
                                map.entry(k).or_insert(val);
                            }
                        }
                    }
                }
            }
            if map.get("default") == Some(&Json::Null) {
                map.remove("default");
            }
            for (_, child) in map.iter_mut() {
                strip_null(child);
            }
        }
        Json::Array(items) => items.iter_mut().for_each(strip_null),
        _ => {}
    }
}

/// Validates `node` against a compiled schema; every violation becomes a
/// diagnostic at the offending key or value.
pub fn validate(compiled: &Compiled, node: &Node) -> Vec<Diagnostic> {
    let schema = &compiled.schema;
    let validator = match &compiled.validator {
        Ok(v) => v,
        Err(e) => return vec![Diagnostic::error(node.span, format!("internal schema error: {e}"))],
    };
    validate_instance(validator, schema, node, &node.to_json())
}

/// Where in the instance a schema finding is.
fn instance_path(err: &jsonschema::ValidationError<'_>) -> Vec<PathSeg> {
    err.instance_path()
        .iter()
        .map(|seg| match seg {
            jsonschema::paths::LocationSegment::Property(p) => PathSeg::Key(p.to_string()),
            jsonschema::paths::LocationSegment::Index(i) => PathSeg::Index(i),
        })
        .collect()
}

/// The values a schema finding is about (an unknown key's own path), so that
/// they can be left out and the rest of the host checked in the same run.
pub fn bad_paths(compiled: &Compiled, node: &Node) -> Vec<Vec<PathSeg>> {
    use jsonschema::error::ValidationErrorKind as K;
    let Ok(validator) = &compiled.validator else { return vec![vec![]] };
    let instance = node.to_json();
    let mut out = Vec::new();
    for err in validator.iter_errors(&instance) {
        let path = instance_path(&err);
        match err.kind() {
            K::AdditionalProperties { unexpected } | K::UnevaluatedProperties { unexpected } => {
                out.extend(unexpected.iter().map(|k| {
                    let mut p = path.clone();
                    p.push(PathSeg::Key(k.clone()));
                    p
                }));
            }
            _ => out.push(path),
        }
    }
    out
}

fn validate_instance(
    validator: &jsonschema::Validator,
    schema: &Json,
    node: &Node,
    instance: &Json,
) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for err in validator.iter_errors(instance) {
        let path = instance_path(&err);
        out.extend(describe(schema, node, &path, err.kind()));
    }
    out
}

fn describe(
    schema: &Json,
    node: &Node,
    path: &[PathSeg],
    kind: &jsonschema::error::ValidationErrorKind,
) -> Vec<Diagnostic> {
    use jsonschema::error::ValidationErrorKind as K;
    let here = node.at(path).map(|(n, _)| n);
    let where_ = location(path);
    let found = here.map(|n| n.type_name()).unwrap_or("nothing");
    let value_span = node.span_of(path);
    match kind {
        K::AdditionalProperties { unexpected } | K::UnevaluatedProperties { unexpected } => {
            let known = properties_at(schema, path);
            // The table's key spans, looked up once (a table may hold many unknown keys).
            let spans: std::collections::HashMap<&str, super::source::Span> = here
                .and_then(Node::entries)
                .map(|entries| entries.iter().map(|e| (e.key.as_str(), e.key_span)).collect())
                .unwrap_or_default();
            unexpected
                .iter()
                .map(|key| {
                    let span = spans.get(key.as_str()).copied().unwrap_or(value_span);
                    let d = Diagnostic::error(span, format!("unknown key `{key}` in {where_}"));
                    match closest(key, known.iter().map(String::as_str)) {
                        Some(best) => d.help(format!("did you mean `{best}`?")),
                        None if known.is_empty() => d,
                        None => d.help(format!("known keys here: {}", known.join(", "))),
                    }
                })
                .collect()
        }
        K::Required { property } => {
            let name = property.as_str().unwrap_or("?");
            vec![
                Diagnostic::error(value_span, format!("missing key `{name}` in {where_}"))
                    .help(format!("add `{name} = ...` to {where_}")),
            ]
        }
        K::Type { kind } => {
            let expected = type_words(&format!("{kind:?}"));
            let d = Diagnostic::error(value_span, format!("{where_}: expected {expected}, found {found}"));
            match corrected(schema, path, here, &expected) {
                Some(fix) => vec![d.help(fix)],
                None => vec![d],
            }
        }
        K::Enum { options } => {
            let opts: Vec<String> =
                options.as_array().map(|a| a.iter().map(|o| o.to_string()).collect()).unwrap_or_default();
            let d = Diagnostic::error(value_span, format!("{where_}: expected one of {}", opts.join(", ")));
            let given = here.and_then(|n| n.to_json().as_str().map(str::to_string)).unwrap_or_default();
            let plain: Vec<String> = opts.iter().map(|o| o.trim_matches('"').to_string()).collect();
            match closest(&given, plain.iter().map(String::as_str)) {
                Some(best) => vec![d.help(format!("did you mean \"{best}\"?"))],
                None => vec![d],
            }
        }
        K::Pattern { pattern } => {
            let what = PATTERN_HELP
                .iter()
                .find(|(p, _)| p == pattern)
                .map(|(_, h)| *h)
                .unwrap_or("a value of the documented form");
            let d = Diagnostic::error(value_span, format!("{where_}: expected {what}"));
            let given = here.and_then(|n| n.to_json().as_str().map(str::to_string)).unwrap_or_default();
            match pattern_fix(pattern, &given) {
                Some(fix) => vec![d.help(format!("did you mean {fix}?"))],
                None => vec![d],
            }
        }
        K::Minimum { limit } | K::ExclusiveMinimum { limit } => {
            vec![Diagnostic::error(value_span, format!("{where_}: must be at least {limit}"))]
        }
        K::Maximum { limit } | K::ExclusiveMaximum { limit } => {
            vec![Diagnostic::error(value_span, format!("{where_}: must be at most {limit}"))]
        }
        K::MinItems { limit } => {
            vec![Diagnostic::error(value_span, format!("{where_}: needs at least {limit} entries"))]
        }
        K::AnyOf { .. } | K::OneOfNotValid { .. } => {
            vec![
                Diagnostic::error(value_span, format!("{where_}: {found} is not allowed here"))
                    .help("see `ghostgen schema` for the accepted forms"),
            ]
        }
        other => vec![Diagnostic::error(value_span, format!("{where_}: {other:?}"))],
    }
}

fn type_words(debug: &str) -> String {
    let words: Vec<&str> = ["String", "Integer", "Number", "Boolean", "Array", "Object"]
        .into_iter()
        .filter(|t| debug.contains(t))
        .map(|t| match t {
            "String" => "a string",
            "Integer" => "an integer",
            "Number" => "a number",
            "Boolean" => "a boolean (true or false)",
            "Array" => "an array",
            _ => "a table",
        })
        .collect();
    if words.is_empty() { debug.to_string() } else { words.join(" or ") }
}

/// How a path reads in a message: `[disk.subvolumes] entry 3` or `` `network.bridges[0].name` ``.
pub fn location(path: &[PathSeg]) -> String {
    if path.is_empty() {
        return "the host".into();
    }
    format!("`{}`", crate::runtime::config::display_path(path))
}

/// The property names the schema allows at `path` (for "did you mean").
/// The schema of the value at `path`, `$ref`s followed.
fn schema_at<'a>(schema: &'a Json, path: &[PathSeg]) -> Option<&'a Json> {
    let mut cur = resolve(schema, schema);
    for seg in path {
        let next = match seg {
            PathSeg::Key(k) => cur
                .get("properties")
                .and_then(|p| p.get(k))
                .or_else(|| cur.get("additionalProperties").filter(|a| a.is_object())),
            PathSeg::Index(_) => cur.get("items"),
        }?;
        cur = resolve(schema, next);
    }
    Some(cur)
}

/// What to write instead of a value of the wrong type, when it is clear.
fn corrected(schema: &Json, path: &[PathSeg], here: Option<&Node>, expected: &str) -> Option<String> {
    let key = match path.last() {
        Some(PathSeg::Key(k)) => k.clone(),
        _ => location(path),
    };
    let value = here?.to_json();
    let pattern = schema_at(schema, path).and_then(|s| s.get("pattern")).and_then(Json::as_str);
    match (expected, &value) {
        ("an integer" | "a number", Json::String(text)) if text.trim().parse::<i64>().is_ok() => {
            Some(format!("write the number without quotes: `{key} = {}`", text.trim()))
        }
        ("a boolean", Json::String(text)) if matches!(text.as_str(), "true" | "false") => {
            Some(format!("write it without quotes: `{key} = {text}`"))
        }
        ("a string", Json::Number(n)) if pattern == Some(DURATION_PATTERN) => {
            Some(format!("a duration has a unit and quotes: `{key} = \"{n}s\"`"))
        }
        ("a string", Json::Number(n)) => Some(format!("write it in quotes: `{key} = \"{n}\"`")),
        ("an array", Json::Object(_)) => {
            let dotted: Vec<String> = path
                .iter()
                .map(|seg| match seg {
                    PathSeg::Key(k) => k.clone(),
                    PathSeg::Index(i) => i.to_string(),
                })
                .collect();
            Some(format!("write each entry as an array of tables: `[[{}]]`", dotted.join(".")))
        }
        _ => None,
    }
}

/// A likely fix for a value that does not match its pattern.
fn pattern_fix(pattern: &str, value: &str) -> Option<String> {
    let compact: String = value.chars().filter(|c| !c.is_whitespace()).collect();
    if pattern == SIZE_PATTERN {
        let digits = compact.find(|c: char| !c.is_ascii_digit()).unwrap_or(compact.len());
        let unit = match compact[digits..].to_ascii_lowercase().as_str() {
            "k" | "kb" | "kib" => "KiB",
            "m" | "mb" | "mib" => "MiB",
            "g" | "gb" | "gib" => "GiB",
            "t" | "tb" | "tib" => "TiB",
            _ => return None,
        };
        return (digits > 0).then(|| format!("\"{}{unit}\" (binary units)", &compact[..digits]));
    }
    if pattern == DURATION_PATTERN {
        let digits = compact.find(|c: char| !c.is_ascii_digit()).unwrap_or(compact.len());
        let unit = match compact[digits..].to_ascii_lowercase().as_str() {
            "ms" | "msec" | "millis" => "ms",
            "" | "s" | "sec" | "secs" | "second" | "seconds" => "s",
            "m" | "min" | "mins" | "minute" | "minutes" => "m",
            "h" | "hr" | "hour" | "hours" => "h",
            "d" | "day" | "days" => "d",
            _ => return None,
        };
        return (digits > 0).then(|| format!("\"{}{unit}\"", &compact[..digits]));
    }
    None
}

fn properties_at(schema: &Json, path: &[PathSeg]) -> Vec<String> {
    schema_at(schema, path)
        .and_then(|s| s.get("properties"))
        .and_then(Json::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

fn resolve<'a>(root: &'a Json, mut node: &'a Json) -> &'a Json {
    for _ in 0..16 {
        if let Some(r) = node.get("$ref").and_then(Json::as_str) {
            match r.strip_prefix('#').and_then(|p| root.pointer(p)) {
                Some(target) => node = target,
                None => return node,
            }
        } else if let Some(branch) = node
            .get("anyOf")
            .and_then(Json::as_array)
            .and_then(|b| b.iter().find(|x| x.get("$ref").is_some() || x.get("properties").is_some()))
        {
            node = branch;
        } else {
            return node;
        }
    }
    node
}
