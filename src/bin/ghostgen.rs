//! `ghostgen`: compile a GhostBridge spec into a NixOS flake.
fn main() {}
