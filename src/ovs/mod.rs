//! Open vSwitch reconciler: OVSDB JSON-RPC client, desired state, diff and apply.
