//! Spec -> the files of a generated flake, written atomically with a manifest.
