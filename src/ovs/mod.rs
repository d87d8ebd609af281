//! Open vSwitch reconciler: OVSDB JSON-RPC client, desired state, diff and apply.
//!
//! - [`config`]: the JSON config (desired bridges)
//! - [`jsonrpc`], [`atom`], [`schema`]: the RFC 7047 client
//! - [`state`]: reading the current rows; [`plan`]: the diff as one transaction
//! - [`apply`]: converging; [`flows`]: OpenFlow rules; [`ethtool`]: uplink offloads; [`mac`]: uplink MACs
//! - [`status`]: the drift report; [`watch`]: staying converged; [`metrics`]: textfile metrics

pub mod apply;
pub mod atom;
pub mod config;
pub mod error;
pub mod ethtool;
pub mod flows;
pub mod jsonrpc;
pub mod mac;
pub mod metrics;
pub mod plan;
pub mod schema;
pub mod state;
pub mod status;
pub mod watch;

pub use apply::{Options, Report, apply};
pub use config::Config;
pub use error::OvsError;
pub use jsonrpc::DbAddr;
