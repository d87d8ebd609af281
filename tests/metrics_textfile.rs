//! The metrics textfile as node exporter's collector reads it: as another,
//! unprivileged user (on NixOS the static user `node-exporter`).

use std::os::unix::process::CommandExt;
use std::process::Command;

use ghostbridge::runtime::metrics::{Family, TextfileWriter};

#[test]
#[ignore = "needs root: reads the file as another user (nobody)"]
fn another_user_can_read_the_metrics_file() {
    assert!(unsafe { libc::geteuid() } == 0, "this test needs root (CI runs it as root with --include-ignored)");
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let w = TextfileWriter::new(dir.path(), "ghostbridge_test");
    w.write(&[Family::gauge("ghostbridge_test_up", "up", 1.0)]).unwrap();
    let out = Command::new("cat").arg(w.path()).uid(65534).gid(65534).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("ghostbridge_test_up 1"));
}
