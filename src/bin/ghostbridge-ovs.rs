//! `ghostbridge-ovs`: placeholder until its issue lands.
fn main() {
    eprintln!("ghostbridge-ovs: not built yet");
    std::process::exit(2);
}
