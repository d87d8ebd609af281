//! The GhostBridge spec: the typed model, TOML parsing with spans, validation
//! and diagnostics that point at file, line and column.

pub mod check;
pub mod diagnostic;
pub mod load;
pub mod migrate;
pub mod model;
pub mod schema;
pub mod source;

pub use diagnostic::{Diagnostic, Severity, render_all};
pub use load::{Loaded, Rejected, load};
pub use model::*;
