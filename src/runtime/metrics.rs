//! Prometheus metrics written through node exporter's textfile collector:
//! a daemon renders its metrics into a `*.prom` file in the collector folder,
//! replacing it atomically (write to a temporary file, then rename).

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// One metric family in the text exposition format.
#[derive(Debug, Clone)]
pub struct Family {
    pub name: String,
    pub help: String,
    pub kind: Kind,
    pub samples: Vec<Sample>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// One sample line: an optional name suffix (`_bucket`, `_sum`, `_count`), labels, value.
#[derive(Debug, Clone)]
pub struct Sample {
    pub suffix: &'static str,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Family {
    pub fn counter(name: &str, help: &str, value: f64) -> Self {
        Self::single(name, help, Kind::Counter, value)
    }
    pub fn gauge(name: &str, help: &str, value: f64) -> Self {
        Self::single(name, help, Kind::Gauge, value)
    }
    fn single(name: &str, help: &str, kind: Kind, value: f64) -> Self {
        Family {
            name: name.to_string(),
            help: help.to_string(),
            kind,
            samples: vec![Sample { suffix: "", labels: vec![], value }],
        }
    }
}

/// A histogram with fixed upper bounds (seconds), cumulative as Prometheus wants.
#[derive(Debug, Clone)]
pub struct Histogram {
    bounds: Vec<f64>,
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    pub fn new(bounds: &[f64]) -> Self {
        Histogram { bounds: bounds.to_vec(), counts: vec![0; bounds.len()], sum: 0.0, count: 0 }
    }
    pub fn observe(&mut self, value: f64) {
        for (bound, count) in self.bounds.iter().zip(self.counts.iter_mut()) {
            if value <= *bound {
                *count += 1;
            }
        }
        self.sum += value;
        self.count += 1;
    }
    pub fn family(&self, name: &str, help: &str) -> Family {
        let mut samples: Vec<Sample> = self
            .bounds
            .iter()
            .zip(&self.counts)
            .map(|(bound, count)| Sample {
                suffix: "_bucket",
                labels: vec![("le".to_string(), format_value(*bound))],
                value: *count as f64,
            })
            .collect();
        samples.push(Sample {
            suffix: "_bucket",
            labels: vec![("le".into(), "+Inf".into())],
            value: self.count as f64,
        });
        samples.push(Sample { suffix: "_sum", labels: vec![], value: self.sum });
        samples.push(Sample { suffix: "_count", labels: vec![], value: self.count as f64 });
        Family { name: name.to_string(), help: help.to_string(), kind: Kind::Histogram, samples }
    }
}

fn format_value(v: f64) -> String {
    if v.is_infinite() { if v > 0.0 { "+Inf".into() } else { "-Inf".into() } } else { format!("{v}") }
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Renders families in the Prometheus text exposition format.
pub fn render(families: &[Family]) -> String {
    let mut out = String::new();
    for f in families {
        let kind = match f.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        };
        let _ = writeln!(out, "# HELP {} {}", f.name, f.help.replace('\n', " "));
        let _ = writeln!(out, "# TYPE {} {}", f.name, kind);
        for s in &f.samples {
            out.push_str(&f.name);
            out.push_str(s.suffix);
            if !s.labels.is_empty() {
                let labels: Vec<String> =
                    s.labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape_label(v))).collect();
                let _ = write!(out, "{{{}}}", labels.join(","));
            }
            let _ = writeln!(out, " {}", format_value(s.value));
        }
    }
    out
}

/// Readable by node exporter's user, writable by the daemon only.
pub const TEXTFILE_MODE: u32 = 0o644;

/// Writes `<dir>/<name>.prom` atomically (a temporary file renamed over it),
/// mode 0644: node exporter reads it as its own user (`node-exporter` on
/// NixOS), not the daemon's. Not synced to disk: a reader never sees a
/// partial file, and one lost in a crash is replaced by the next write,
/// so an fsync would only make every write cost a disk flush. Errors are
/// returned, never fatal to a daemon.
#[derive(Debug, Clone)]
pub struct TextfileWriter {
    path: PathBuf,
}

impl TextfileWriter {
    /// `dir` is node exporter's `--collector.textfile.directory`; `name` is the daemon's.
    pub fn new(dir: &Path, name: &str) -> Self {
        TextfileWriter { path: dir.join(format!("{name}.prom")) }
    }
    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn write(&self, families: &[Family]) -> std::io::Result<()> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        // A temporary file is created 0600; the collector must be able to read it.
        tmp.as_file().set_permissions(std::os::unix::fs::PermissionsExt::from_mode(TEXTFILE_MODE))?;
        tmp.write_all(render(families).as_bytes())?;
        tmp.persist(&self.path).map_err(|e| e.error)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_histogram_cumulatively() {
        let mut h = Histogram::new(&[0.001, 0.01]);
        h.observe(0.0005);
        h.observe(0.005);
        h.observe(0.5);
        let text = render(&[h.family("x_seconds", "x"), Family::counter("y_total", "y", 3.0)]);
        assert!(text.contains("x_seconds_bucket{le=\"0.001\"} 1\n"), "{text}");
        assert!(text.contains("x_seconds_bucket{le=\"0.01\"} 2\n"), "{text}");
        assert!(text.contains("x_seconds_bucket{le=\"+Inf\"} 3\n"), "{text}");
        assert!(text.contains("x_seconds_count 3\n"), "{text}");
        assert!(text.contains("# TYPE y_total counter\ny_total 3\n"), "{text}");
    }

    #[test]
    fn writes_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let w = TextfileWriter::new(dir.path(), "ghostbridge_test");
        w.write(&[Family::gauge("g", "a gauge", 1.5)]).unwrap();
        let text = std::fs::read_to_string(w.path()).unwrap();
        assert!(text.ends_with("g 1.5\n"));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(w.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644, "node exporter reads the file as another user");
    }
}
