//! `ghostbridge-snapshotter`: placeholder until its issue lands.
fn main() {
    eprintln!("ghostbridge-snapshotter: not built yet");
    std::process::exit(2);
}
