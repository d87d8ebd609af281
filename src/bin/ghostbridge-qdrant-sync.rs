//! `ghostbridge-qdrant-sync`: placeholder until its issue lands.
fn main() {
    eprintln!("ghostbridge-qdrant-sync: not built yet");
    std::process::exit(2);
}
