//! Turns spec text into a [`Spec`]: TOML parse, single-host or fleet shape,
//! `[defaults]` merge, schema validation, decoding and the semantic checks.
//! Every problem found is reported, in file order, not only the first.

use super::check;
use super::diagnostic::{Diagnostic, HostRef, closest};
use super::migrate;
use super::model::{FlakeInputs, HostSpec, Spec};
use super::schema;
use super::source::{Entry, Kind, Node, PathSeg, Span};

/// A spec that did not load: every diagnostic (errors and warnings).
#[derive(Debug, Clone)]
pub struct Rejected {
    pub diagnostics: Vec<Diagnostic>,
}

/// A loaded spec, with the trees its values came from (for locating later findings).
#[derive(Debug, Clone)]
pub struct Loaded {
    pub spec: Spec,
    pub warnings: Vec<Diagnostic>,
    pub host_nodes: Vec<Node>,
}

const META_KEYS: [&str; 5] = ["name", "system", "state_version", "time_zone", "locale"];
const TOP_KEYS: [&str; 4] = ["flake", "host", "hosts", "defaults"];

/// Parses and validates a spec.
pub fn load(text: &str) -> Result<Loaded, Rejected> {
    let mut root_value = match toml_span::parse(text) {
        Ok(v) => v,
        Err(e) => return Err(Rejected { diagnostics: vec![toml_error(text, &e)] }),
    };
    let root = Node::from_toml(&mut root_value, text);
    let mut diags = Vec::new();
    check_strings(&root, &mut diags);

    let flake = match root.get("flake") {
        Some(e) => decode::<FlakeInputs>(schema::flake(), &e.value, &mut diags).unwrap_or_default(),
        None => FlakeInputs::default(),
    };

    if let Some(url) = &flake.netboot_url {
        let bad = !(url.starts_with("http://") || url.starts_with("https://"))
            || url.chars().any(|c| c.is_whitespace() || c == '$' || c == '"');
        if bad {
            let span = root.span_of(&[PathSeg::from("flake"), PathSeg::from("netboot_url")]);
            diags.push(
                Diagnostic::error(span, format!("netboot_url {url:?} is not a plain http(s) URL"))
                    .help("write where the installers are served, e.g. \"http://boot.example.net/ghostbridge\""),
            );
        }
    }
    let mut host_nodes = host_trees(&root, &mut diags);
    let host_schema = schema::host();
    let mut hosts = Vec::new();
    let mut decoded_nodes = Vec::new();
    let mut decoded_refs = Vec::new();
    for (node, host_ref) in &mut host_nodes {
        let before = diags.len();
        migrate::host(node, &mut diags);
        if let Some(h) = decode::<HostSpec>(host_schema, node, &mut diags) {
            hosts.push(h);
            decoded_nodes.push(node.clone());
            decoded_refs.push(host_ref.clone());
        } else if let Some((h, repaired)) = decode_without_mistakes(host_schema, node) {
            // Its mistakes are reported above; every other part is checked too,
            // so that one run names every mistake.
            hosts.push(h);
            decoded_nodes.push(repaired);
            decoded_refs.push(host_ref.clone());
        } else {
            check::undecoded(node, &mut diags);
        }
        check::about(&mut diags[before..], host_ref.as_ref());
    }
    // Hosts that did not decode were reported above; check the rest.
    check::all(&hosts, &decoded_nodes, &decoded_refs, &mut diags);

    dedup(&mut diags);
    if diags.iter().any(Diagnostic::is_error) {
        diags.sort_by_key(|d| (d.span.start, d.span.end));
        return Err(Rejected { diagnostics: diags });
    }
    Ok(Loaded { spec: Spec { flake, hosts }, warnings: diags, host_nodes: decoded_nodes })
}

fn toml_error(text: &str, e: &toml_span::Error) -> Diagnostic {
    let span = Span::from(e.span);
    // The parser may point past the end of the text: keep the span inside it.
    let span = if span.start >= text.len() && !text.is_empty() {
        Span { start: text.len() - 1, end: text.len() }
    } else {
        Span { start: span.start, end: span.end.min(text.len()).max(span.start) }
    };
    Diagnostic::error(span, format!("TOML syntax: {e}"))
        .help("fix the TOML syntax at this position; see https://toml.io")
}

/// One tree per host, shaped like [`HostSpec`], with its `[[hosts]]` entry in a fleet.
fn host_trees(root: &Node, diags: &mut Vec<Diagnostic>) -> Vec<(Node, Option<HostRef>)> {
    let entries = root.entries().unwrap_or(&[]);
    let single = root.get("host");
    let fleet = root.get("hosts");
    match (single, fleet) {
        (Some(h), Some(f)) => {
            diags.push(
                Diagnostic::error(f.key_span, "a spec has either one [host] or a fleet of [[hosts]], not both")
                    .help(format!("move the [host] table (`{}`) into a [[hosts]] entry, or remove [[hosts]]", h.key)),
            );
            vec![]
        }
        (Some(host), None) => {
            if let Some(d) = root.get("defaults") {
                diags.push(
                    Diagnostic::error(d.key_span, "[defaults] only applies to a fleet of [[hosts]]")
                        .help("move these values into the host's own sections"),
                );
            }
            let mut merged: Vec<Entry> = match &host.value.kind {
                Kind::Table(meta) => meta
                    .iter()
                    .filter(|e| {
                        if META_KEYS.contains(&e.key.as_str()) {
                            return true;
                        }
                        let d = Diagnostic::error(e.key_span, format!("unknown key `{}` in [host]", e.key));
                        diags.push(match closest(&e.key, META_KEYS) {
                            Some(best) => d.help(format!("did you mean `{best}`?")),
                            None => d.help(format!(
                                "[host] holds {}; sections such as [{}] go at the top level",
                                META_KEYS.join(", "),
                                e.key
                            )),
                        });
                        false
                    })
                    .cloned()
                    .collect(),
                _ => {
                    diags.push(Diagnostic::error(
                        host.value.span,
                        format!("[host] must be a table, found {}", host.value.type_name()),
                    ));
                    return vec![];
                }
            };
            merged.extend(entries.iter().filter(|e| !TOP_KEYS.contains(&e.key.as_str())).cloned());
            vec![(Node::table(host.value.span, merged), None)]
        }
        (None, Some(fleet)) => {
            let defaults = root.get("defaults").map(|d| &d.value);
            for e in entries.iter().filter(|e| !TOP_KEYS.contains(&e.key.as_str())) {
                let d = Diagnostic::error(e.key_span, format!("unknown top-level key `{}` in a fleet spec", e.key));
                diags.push(d.help("in a fleet, host sections go inside [defaults] or a [[hosts]] entry"));
            }
            match &fleet.value.kind {
                Kind::Array(items) if !items.is_empty() => items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| {
                        let node = match defaults {
                            Some(d) => Node::merged(d, item),
                            None => item.clone(),
                        };
                        let name = match node.get("name").map(|e| &e.value.kind) {
                            Some(Kind::Str(name)) => Some(name.clone()),
                            _ => None,
                        };
                        (node, Some(HostRef { entry: i + 1, name }))
                    })
                    .collect(),
                _ => {
                    diags.push(Diagnostic::error(fleet.value.span, "[[hosts]] must be a non-empty array of tables"));
                    vec![]
                }
            }
        }
        (None, None) => {
            diags.push(Diagnostic::error(Span { start: 0, end: 0 }, "the spec declares no host").help(
                "add a [host] table with `name` and `state_version` (run `ghostgen init` for a complete example)",
            ));
            vec![]
        }
    }
}

/// How many faulty values a host may have and still be checked without them.
const MAX_REPAIRS: usize = 200;

/// The host with every value a schema finding is about left out, decoded
/// (defaults fill the gaps); `None` when that still does not decode, e.g. a
/// required key is missing. Its own findings were reported already.
fn decode_without_mistakes(schema: &schema::Compiled, node: &Node) -> Option<(HostSpec, Node)> {
    let mut bad = schema::bad_paths(schema, node);
    // Past a few hundred mistakes, more checks would only add to the pile.
    if bad.is_empty() || bad.len() > MAX_REPAIRS || bad.iter().any(Vec::is_empty) {
        return None;
    }
    // Later array items first, so that earlier indices stay valid.
    bad.sort();
    bad.dedup();
    let mut repaired = node.clone();
    for path in bad.iter().rev() {
        repaired.remove(path);
    }
    let mut ignored = Vec::new();
    decode::<HostSpec>(schema, &repaired, &mut ignored).map(|h| (h, repaired))
}

/// Schema-validates `node`; if clean, decodes it with serde.
fn decode<T: serde::de::DeserializeOwned>(
    schema: &schema::Compiled,
    node: &Node,
    diags: &mut Vec<Diagnostic>,
) -> Option<T> {
    let found = schema::validate(schema, node);
    if !found.is_empty() {
        diags.extend(found);
        return None;
    }
    let json = node.to_json();
    match serde_path_to_error::deserialize::<_, T>(json) {
        Ok(v) => Some(v),
        Err(e) => {
            let path: Vec<PathSeg> = e
                .path()
                .iter()
                .filter_map(|seg| match seg {
                    serde_path_to_error::Segment::Map { key } => Some(PathSeg::Key(key.clone())),
                    serde_path_to_error::Segment::Seq { index } => Some(PathSeg::Index(*index)),
                    _ => None,
                })
                .collect();
            diags.push(Diagnostic::error(node.span_of(&path), format!("{}: {}", schema::location(&path), e.inner())));
            None
        }
    }
}

/// Nix strings cannot hold NUL; refuse it before anything is generated.
fn check_strings(root: &Node, diags: &mut Vec<Diagnostic>) {
    root.visit_strings(&mut Vec::new(), &mut |_, s, span| {
        if s.contains('\0') {
            diags.push(
                Diagnostic::error(span, "this string contains a NUL character, which Nix strings cannot hold")
                    .help("remove the \\u0000 escape"),
            );
        }
    });
}

/// One finding per place and message; a value from `[defaults]` that is wrong
/// for several hosts is one finding naming them all.
fn dedup(diags: &mut Vec<Diagnostic>) {
    let mut first: std::collections::HashMap<(usize, usize, String), usize> = std::collections::HashMap::new();
    let mut kept: Vec<Diagnostic> = Vec::with_capacity(diags.len());
    for d in diags.drain(..) {
        match first.entry((d.span.start, d.span.end, d.message.clone())) {
            std::collections::hash_map::Entry::Occupied(at) => {
                for host in d.hosts {
                    kept[*at.get()].add_host(host);
                }
            }
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(kept.len());
                kept.push(d);
            }
        }
    }
    *diags = kept;
}
