//! A small typed Nix expression builder and printer. Every string that comes
//! from a spec is escaped here, and nowhere else.
