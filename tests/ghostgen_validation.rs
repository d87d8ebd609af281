//! One test per validation rule: each asserts the message and the location
//! (line and column) that `ghostgen check` reports.

use ghostbridge::spec::{self, source::line_col};

const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK0wmN/Cr3JXqmLW7u+g9pTh+wyqDHpSQEIQczXkVx9q a@b";

/// A valid host; `extra` is appended (TOML sections).
fn spec_with(extra: &str) -> String {
    format!(
        "[host]\nname = \"web1\"\nstate_version = \"25.11\"\n\n[[users]]\nname = \"ops\"\nadmin = true\nssh_keys = [\"{KEY}\"]\n{extra}"
    )
}

/// (line, col, message, help) of every diagnostic, in file order.
fn diagnostics(text: &str) -> Vec<(usize, usize, String, String)> {
    match spec::load(text) {
        Ok(loaded) => loaded
            .warnings
            .iter()
            .map(|d| {
                let (l, c) = line_col(text, d.span.start);
                (l, c, format!("warning: {}", d.message), d.help.clone().unwrap_or_default())
            })
            .collect(),
        Err(r) => r
            .diagnostics
            .iter()
            .map(|d| {
                let (l, c) = line_col(text, d.span.start);
                (l, c, d.message.clone(), d.help.clone().unwrap_or_default())
            })
            .collect(),
    }
}

/// Asserts exactly one error, at `line:col`, whose message contains `needle`.
fn assert_one(text: &str, line: usize, col: usize, needle: &str) -> String {
    let d = diagnostics(text);
    assert_eq!(d.len(), 1, "expected one diagnostic, got {d:#?}\n--- spec ---\n{text}");
    let (l, c, msg, help) = &d[0];
    assert!(msg.contains(needle), "message {msg:?} lacks {needle:?}");
    assert_eq!((*l, *c), (line, col), "location of {msg:?}\n--- spec ---\n{text}");
    help.clone()
}

fn last_line(text: &str, pred: impl Fn(&str) -> bool) -> Option<usize> {
    text.lines().enumerate().filter(|(_, l)| pred(l)).map(|(i, _)| i).last()
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).map(|i| i + 1).unwrap_or_else(|| panic!("{needle:?} not in spec"))
}

#[test]
fn the_base_spec_and_every_example_are_valid() {
    assert!(diagnostics(&spec_with("")).is_empty());
    for entry in std::fs::read_dir("examples").unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(spec::load(&text).is_ok(), "{} is invalid: {:#?}", path.display(), diagnostics(&text));
        }
    }
}

#[test]
fn toml_syntax_error_has_location() {
    let text = "[host]\nname = \"a\"\nstate_version = \"25.11\nx = 1\n";
    let d = diagnostics(text);
    assert_eq!(d.len(), 1);
    assert!(d[0].2.starts_with("TOML syntax:"), "{d:?}");
    assert_eq!(d[0].0, 3);
}

#[test]
fn type_error_says_expected_and_found() {
    let text = spec_with("[ssh]\nport = \"22\"\n");
    assert_one(&text, line_of(&text, "port ="), 8, "`ssh.port`: expected an integer, found a string");
}

#[test]
fn unknown_key_suggests_closest() {
    let text = spec_with(
        "[[disk.subvolumes]]\nname = \"@\"\nmount = \"/\"\ncompres = \"zstd:3\"\n[disk]\ndevice = \"/dev/sda\"\n",
    );
    // `[[disk.subvolumes]]` before `[disk]` is valid TOML; the typo is what is reported.
    let help = assert_one(&text, line_of(&text, "compres ="), 1, "unknown key `compres`");
    assert_eq!(help, "did you mean `compress`?");
}

#[test]
fn unknown_section_suggests_closest() {
    let text = spec_with("[netwrok]\n");
    let help = assert_one(&text, line_of(&text, "[netwrok]"), 2, "unknown key `netwrok`");
    assert_eq!(help, "did you mean `network`?");
}

#[test]
fn missing_required_key_is_named() {
    let text = "[host]\nname = \"a\"\n";
    let d = diagnostics(text);
    assert!(
        d.iter().any(|(_, _, m, h)| m.contains("missing key `state_version`") && h.contains("add `state_version")),
        "{d:?}"
    );
}

#[test]
fn hostname_must_be_rfc1123() {
    let text = spec_with("").replace("\"web1\"", "\"web_1\"");
    assert_one(&text, 2, 8, "not a valid RFC 1123 label");
    let text = spec_with("").replace("\"web1\"", "\"-web\"");
    assert_one(&text, 2, 8, "starts or ends with '-'");
}

#[test]
fn addresses_must_parse() {
    let text = spec_with("[[network.bridges]]\nname = \"br0\"\naddresses = [\"10.0.0.300/24\"]\n");
    assert_one(&text, line_of(&text, "addresses"), 14, "is not in CIDR form");
    let text = spec_with("[[network.bridges]]\nname = \"br0\"\naddresses = [\"10.0.0.1/24\"]\ndns = [\"one.one\"]\n");
    assert_one(&text, line_of(&text, "dns"), 8, "DNS server \"one.one\" is not an IP address");
    let text = spec_with("[[network.bridges]]\nname = \"br0\"\naddresses = [\"2001:db8::1/129\"]\n");
    assert_one(&text, line_of(&text, "addresses"), 14, "prefix length 129 is larger than 128");
}

#[test]
fn gateway_must_lie_inside_the_subnet() {
    let text = spec_with(
        "[[network.bridges]]\nname = \"br0\"\naddresses = [\"203.0.113.10/24\"]\ngateway = \"203.0.114.1\"\n",
    );
    assert_one(&text, line_of(&text, "gateway"), 11, "gateway 203.0.114.1 is outside the bridge's subnets");
    let ok = spec_with(
        "[[network.bridges]]\nname = \"br0\"\naddresses = [\"203.0.113.10/24\"]\ngateway = \"203.0.113.1\"\n",
    );
    assert!(diagnostics(&ok).is_empty());
}

#[test]
fn interface_names_are_short_and_unique() {
    let text = spec_with("[[network.bridges]]\nname = \"averyverylongbr0\"\n");
    assert_one(&text, line_of(&text, "averyvery"), 8, "is 16 bytes long; Linux allows at most 15");
    let text = spec_with("[[network.bridges]]\nname = \"br0\"\n[[network.bridges]]\nname = \"br0\"\n");
    assert_one(
        &text,
        last_line(&text, |l| l.contains("br0")).unwrap() + 1,
        8,
        "\"br0\" is attached to the switch twice",
    );
}

#[test]
fn every_ovs_port_exists_once() {
    let text = spec_with(
        "[[network.bridges]]\nname = \"br0\"\nuplink = \"eth0\"\n[[network.bridges]]\nname = \"br1\"\nports = [\"eth0\"]\n",
    );
    let help = assert_one(&text, line_of(&text, "ports"), 10, "\"eth0\" is attached to the switch twice");
    assert!(help.contains("network.bridges[0].uplink"), "{help}");
}

#[test]
fn subvolume_names_and_mounts_unique_and_absolute() {
    let disk = "[disk]\ndevice = \"/dev/sda\"\n[[disk.subvolumes]]\nname = \"@\"\nmount = \"/\"\n";
    let text = spec_with(&format!("{disk}[[disk.subvolumes]]\nname = \"@\"\nmount = \"/home\"\n"));
    assert_one(&text, last_line(&text, |l| l == "name = \"@\"").unwrap() + 1, 8, "subvolume \"@\" is declared twice");
    let text = spec_with(&format!("{disk}[[disk.subvolumes]]\nname = \"@home\"\nmount = \"/\"\n"));
    assert_one(&text, last_line(&text, |l| l == "mount = \"/\"").unwrap() + 1, 9, "mount point \"/\" is used twice");
    let text = spec_with(&format!("{disk}[[disk.subvolumes]]\nname = \"@home\"\nmount = \"home\"\n"));
    assert_one(&text, line_of(&text, "mount = \"home\""), 9, "mount point \"home\" is not absolute");
}

#[test]
fn compression_level_is_checked_per_algorithm() {
    let base = "[disk]\ndevice = \"/dev/sda\"\n[[disk.subvolumes]]\nname = \"@\"\nmount = \"/\"\n";
    for (compress, needle) in [
        ("zstd:16", "zstd compression level 16 is out of range"),
        ("zstd:0", "zstd compression level 0 is out of range"),
        ("zlib:10", "zlib compression level 10 is out of range"),
        ("lzo:1", "lzo takes no compression level"),
    ] {
        let text = spec_with(&format!("{base}compress = \"{compress}\"\n"));
        assert_one(&text, line_of(&text, "compress"), 12, needle);
    }
    for ok in ["zstd:15", "zstd:1", "zlib:9", "lzo", "zstd"] {
        assert!(diagnostics(&spec_with(&format!("{base}compress = \"{ok}\"\n"))).is_empty(), "{ok}");
    }
    let text = spec_with(&format!("{base}compress = \"brotli:3\"\n"));
    assert_one(&text, line_of(&text, "compress"), 12, "expected a compression");
}

#[test]
fn nodatacow_with_compression_says_why() {
    let text = spec_with(
        "[disk]\ndevice = \"/dev/sda\"\n[[disk.subvolumes]]\nname = \"@\"\nmount = \"/\"\ncompress = \"zstd:3\"\nnodatacow = true\n",
    );
    let help = assert_one(&text, line_of(&text, "nodatacow"), 13, "sets both nodatacow and compress");
    assert!(help.contains("only compresses copy-on-write data"), "{help}");
}

#[test]
fn retention_at_least_the_interval() {
    let text = spec_with(
        "[snapshotter]\nsource = \"/srv\"\nsnapshot_dir = \"/snap\"\ndatabase = \"/var/lib/gb/c.db\"\ninterval = \"2s\"\nretention = \"1500ms\"\n",
    );
    let help = assert_one(&text, line_of(&text, "retention"), 13, "retention 1500ms is shorter than interval 2s");
    assert!(help.contains("at least \"2s\""), "{help}");
}

#[test]
fn durations_must_be_well_formed() {
    let text = spec_with(
        "[snapshotter]\nsource = \"/srv\"\nsnapshot_dir = \"/snap\"\ndatabase = \"/var/lib/gb/c.db\"\ninterval = \"1 s\"\n",
    );
    assert_one(&text, line_of(&text, "interval"), 12, "expected a duration");
}

#[test]
fn vector_dimension_is_positive() {
    let snaps = "[snapshotter]\nsource = \"/srv\"\nsnapshot_dir = \"/snap\"\ndatabase = \"/var/lib/gb/c.db\"\n";
    let text = spec_with(&format!("{snaps}[qdrant_sync]\ndimension = 0\n"));
    assert_one(&text, line_of(&text, "dimension"), 13, "dimension is 0; it must be between 1 and 65536");
    let text = spec_with(&format!("{snaps}[qdrant_sync]\ndimension = -3\n"));
    assert_one(&text, line_of(&text, "dimension"), 13, "`qdrant_sync.dimension`: must be at least 0");
}

#[test]
fn tcp_ports_do_not_collide() {
    let text = spec_with("[monitoring]\ngrafana_port = 22\n");
    assert_one(&text, line_of(&text, "grafana_port"), 16, "Grafana and SSH both use TCP port 22");
    let text = spec_with("[virtualization]\nnovnc_port = 9090\n[monitoring]\n");
    let d = diagnostics(&text);
    assert!(
        d.iter()
            .any(|(_, _, m, h)| m.contains("noVNC and Prometheus both use TCP port 9090") && h.contains("give noVNC")),
        "{d:?}"
    );
    let text = spec_with(
        "[snapshotter]\nsource = \"/srv\"\nsnapshot_dir = \"/snap\"\ndatabase = \"/var/lib/gb/c.db\"\n[qdrant_sync]\n[virtualization]\nlibvirt = true\nnovnc_port = 6334\n",
    );
    assert_one(&text, line_of(&text, "novnc_port"), 14, "noVNC and Qdrant (gRPC) both use TCP port 6334");
}

#[test]
fn ssh_keys_are_ed25519_only() {
    for (key, reason) in [
        ("ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 x@y", "RSA keys are refused"),
        ("ssh-dss AAAAB3NzaC1kc3MAAACBAP x@y", "DSA keys are refused"),
        ("ecdsa-sha2-nistp256 AAAAE2VjZHNh x@y", "ECDSA keys are refused"),
        ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK0w x@y", "not a valid Ed25519 public key"),
    ] {
        let text = spec_with("").replace(KEY, key);
        let help = assert_one(&text, line_of(&text, "ssh_keys"), 13, reason);
        assert!(help.contains("ssh-keygen -t ed25519"), "{help}");
    }
}

#[test]
fn some_admin_must_have_a_key() {
    let text = spec_with("").replace("admin = true", "admin = false");
    let help = assert_one(&text, 5, 1, "no admin user has an SSH key, so nobody could log in");
    assert!(help.contains("admin = true"), "{help}");
    let text = "[host]\nname = \"a\"\nstate_version = \"25.11\"\n";
    assert_one(text, 1, 1, "nobody could log in");
}

#[test]
fn snapshot_database_outside_the_snapshotted_subvolume() {
    let disk = "[disk]\ndevice = \"/dev/sda\"\n[[disk.subvolumes]]\nname = \"@\"\nmount = \"/\"\n[[disk.subvolumes]]\nname = \"@data\"\nmount = \"/srv/data\"\n[[disk.subvolumes]]\nname = \"@chain\"\nmount = \"/srv/data/chain\"\n";
    let text = spec_with(&format!(
        "{disk}[snapshotter]\nsource = \"/srv/data\"\nsnapshot_dir = \"/snapshots\"\ndatabase = \"/srv/data/chain.db\"\n"
    ));
    let help = assert_one(&text, line_of(&text, "database"), 12, "lives inside the snapshotted subvolume");
    assert!(help.contains("another subvolume"), "{help}");
    // A nested subvolume is not part of the snapshot: fine.
    let ok = spec_with(&format!(
        "{disk}[snapshotter]\nsource = \"/srv/data\"\nsnapshot_dir = \"/snapshots\"\ndatabase = \"/srv/data/chain/chain.db\"\n"
    ));
    assert!(diagnostics(&ok).is_empty(), "{:?}", diagnostics(&ok));
    // Without a declared layout, plain path containment decides.
    let text =
        spec_with("[snapshotter]\nsource = \"/srv\"\nsnapshot_dir = \"/snap\"\ndatabase = \"/srv/db/chain.db\"\n");
    assert_one(&text, line_of(&text, "database"), 12, "lives inside the snapshotted subvolume");
}

#[test]
fn several_errors_are_all_reported_in_file_order() {
    let text = spec_with(
        "[disk]\ndevice = \"/dev/sda\"\n[[disk.subvolumes]]\nname = \"@\"\nmount = \"/\"\ncompress = \"zstd:20\"\n\
         [[network.bridges]]\nname = \"br0\"\naddresses = [\"10.0.0.1/24\"]\ngateway = \"10.9.0.1\"\n\
         [ssh]\nport = 3000\n[monitoring]\n",
    )
    .replace("\"web1\"", "\"web_1\"");
    let d = diagnostics(&text);
    let lines: Vec<usize> = d.iter().map(|x| x.0).collect();
    assert!(d.len() >= 4, "{d:#?}");
    let mut sorted = lines.clone();
    sorted.sort();
    assert_eq!(lines, sorted, "not in file order: {d:#?}");
    for needle in ["RFC 1123", "zstd compression level 20", "outside the bridge's subnets", "both use TCP port 3000"] {
        assert!(d.iter().any(|x| x.2.contains(needle)), "{needle} missing from {d:#?}");
    }
}

#[test]
fn fleet_errors_point_into_the_right_entry_and_names_are_unique() {
    let text = format!(
        "[defaults]\nstate_version = \"25.11\"\n[[defaults.users]]\nname = \"ops\"\nadmin = true\nssh_keys = [\"{KEY}\"]\n\
         [[hosts]]\nname = \"a\"\n[[hosts]]\nname = \"b\"\n[hosts.ssh]\nprot = 22\n[[hosts]]\nname = \"a\"\n"
    );
    let d = diagnostics(&text);
    assert_eq!(d.len(), 2, "{d:#?}");
    assert_eq!((d[0].0, d[0].2.as_str()), (line_of(&text, "prot"), "unknown key `prot` in `ssh`"));
    assert_eq!(d[0].3, "did you mean `port`?");
    assert!(d[1].2.contains("host name \"a\" is used twice"), "{d:#?}");
}

#[test]
fn fleet_findings_name_their_hosts_entries() {
    let text = format!(
        "[defaults]\nstate_version = \"25.11\"\n[defaults.ssh]\nport = \"2222\"\n\
         [[defaults.users]]\nname = \"ops\"\nadmin = true\nssh_keys = [\"{KEY}\"]\n\
         [[hosts]]\nname = \"a\"\n[[hosts]]\nname = \"b\"\ntime_zone = \"Europe/Berln\"\n"
    );
    let rejected = spec::load(&text).unwrap_err();
    let rendered = spec::diagnostic::render_all(&rejected.diagnostics, "fleet.toml", &text);
    // A value from [defaults] wrong for every host is one finding naming them all.
    let port = rendered.split("\n\n").find(|d| d.contains("2222")).unwrap();
    assert!(port.contains("= note: in [[hosts]] entries 1 (\"a\"), 2 (\"b\")"), "{rendered}");
    // A host's own mistake names its entry.
    let zone = rendered.split("\n\n").find(|d| d.contains("Berln")).unwrap();
    assert!(zone.contains("= note: in [[hosts]] entry 2 (\"b\")\n"), "{rendered}");
    assert_eq!(rendered.matches("2222").count(), 2, "one finding, shown once: {rendered}");
    // A single-host spec has no entries to name.
    let single = spec::load(&spec_with("[ssh]\nport = \"2222\"\n")).unwrap_err();
    assert!(single.diagnostics.iter().all(|d| d.hosts.is_empty()));
}

#[test]
fn host_and_hosts_together_is_an_error() {
    let text = format!("{}\n[[hosts]]\nname = \"b\"\n", spec_with(""));
    let d = diagnostics(&text);
    assert!(d.iter().any(|x| x.2.contains("either one [host] or a fleet")), "{d:#?}");
}

#[test]
fn nul_in_a_string_is_refused() {
    let text = spec_with("")
        .replace("\"UTC\"", "x")
        .replace("state_version = \"25.11\"", "state_version = \"25.11\"\ntime_zone = \"a\\u0000b\"");
    assert_one(&text, line_of(&text, "time_zone"), 13, "NUL character");
}

#[test]
fn netboot_url_must_be_plain_http() {
    let text = format!("[flake]\nnetboot_url = \"ftp://x/${{y}}\"\n{}", spec_with(""));
    assert_one(&text, 2, 15, "netboot_url \"ftp://x/${y}\" is not a plain http(s) URL");
}

#[test]
fn paths_are_plain() {
    let text = spec_with(
        "[disk]\ndevice = \"/dev/sda\"\n[[disk.subvolumes]]\nname = \"@\"\nmount = \"/\"\n[[disk.subvolumes]]\nname = \"@x\"\nmount = \"/my data\"\n",
    );
    assert_one(&text, line_of(&text, "/my data"), 9, "mount point \"/my data\" has characters other than");
    let text =
        spec_with("[snapshotter]\nsource = \"/srv\"\nsnapshot_dir = \"/snap\"\ndatabase = \"/var/lib/gb/c'.db\"\n");
    assert_one(&text, line_of(&text, "database"), 12, "database \"/var/lib/gb/c'.db\" is refused: it holds");
}

#[test]
fn absurd_durations_are_refused() {
    let text = spec_with(
        "[snapshotter]\nsource = \"/srv\"\nsnapshot_dir = \"/snap\"\ndatabase = \"/var/lib/gb/c.db\"\nretention = \"400d\"\n",
    );
    assert_one(&text, line_of(&text, "retention"), 13, "it is longer than 366 days");
}

// Regression tests of the one contract: specs that `ghostgen check` used to
// accept and that then failed at evaluation, at daemon start or in a VM check.

const SNAP: &str = "[snapshotter]\nsource = \"/srv\"\nsnapshot_dir = \"/snap\"\ndatabase = \"/var/lib/gb/c.db\"\n";

#[test]
fn a_relative_api_key_file_is_refused_at_its_key() {
    let text = spec_with(&format!("{SNAP}[qdrant_sync]\napi_key_file = \"secrets/qdrant\"\n"));
    assert_one(&text, line_of(&text, "api_key_file"), 16, "api_key_file must be an absolute path");
}

#[test]
fn loopback_urls_without_port_or_in_ipv6_are_a_local_qdrant() {
    // Without a port an http URL means port 80, which the local Qdrant (an
    // unprivileged unit) cannot bind: said as such, not as a failed assertion.
    let text = spec_with(&format!("{SNAP}[qdrant_sync]\nurl = \"http://127.0.0.1\"\n"));
    let d = diagnostics(&text);
    assert!(
        d.iter().any(|x| x.2.contains("Qdrant (REST) cannot listen on port 80") && x.0 == line_of(&text, "url")),
        "{d:#?}"
    );
    for url in ["http://[::1]:6333", "http://127.0.0.1:6333", "http://localhost:7000/q"] {
        let text = spec_with(&format!("{SNAP}[qdrant_sync]\nurl = \"{url}\"\n"));
        let loaded = spec::load(&text).unwrap_or_else(|r| panic!("{url}: {:#?}", r.diagnostics));
        assert!(loaded.spec.hosts[0].qdrant_sync.as_ref().unwrap().local_qdrant().is_some(), "{url}");
    }
}

#[test]
fn what_the_sync_refuses_at_start_is_refused_by_check() {
    for (line, needle) in [
        ("url = \"https://q.example:6333\"", "plain http only"),
        ("url = \"http://127.0.0.1:65535\"", "no port for its gRPC API"),
        ("batch = 10001", "batch is 10001; it must be between 1 and 10000"),
        ("dimension = 65537", "dimension is 65537; it must be between 1 and 65536"),
        ("batch = 10000", "more than Qdrant accepts by default"),
        ("collection = \"a/b\"", "collection \"a/b\" contains '/'"),
    ] {
        let text = spec_with(&format!("{SNAP}[qdrant_sync]\n{line}\n"));
        let d = diagnostics(&text);
        assert_eq!(d.len(), 1, "{line}: {d:#?}");
        assert!(d[0].2.contains(needle), "{line}: {:?}", d[0].2);
        assert_eq!(d[0].0, line_of(&text, line), "{line}");
    }
}

#[test]
fn an_extra_flow_the_reconciler_refuses_is_refused_by_check() {
    for flow in ["priority=5,ip", "#priority=5,actions=drop", "actions="] {
        let text = spec_with(&format!("[[network.bridges]]\nname = \"br0\"\nextra_flows = [\"{flow}\"]\n"));
        assert_one(&text, line_of(&text, "extra_flows"), 16, "extra flow");
    }
}

#[test]
fn interface_names_that_are_globs_or_quotes_are_refused() {
    for name in ["br\\\"0", "en*", "!lo", "br 0"] {
        let text = spec_with(&format!("[[network.bridges]]\nname = \"br0\"\nuplink = \"{name}\"\n"));
        assert_one(&text, line_of(&text, "uplink"), 10, "is invalid");
    }
}

#[test]
fn old_names_are_accepted_with_a_warning_naming_the_new_one() {
    let text = spec_with(
        "[snapshots]\nsource = \"/srv\"\nsnapshot_dir = \"/snap\"\ndatabase = \"/var/lib/gb/c.db\"\n[vectors]\n\
         [[network.bridges]]\nname = \"br0\"\ndatapath = \"netdev\"\n",
    );
    let d = diagnostics(&text);
    let messages: Vec<&str> = d.iter().map(|x| x.2.as_str()).collect();
    assert_eq!(
        messages,
        [
            "warning: [snapshots] is now called [snapshotter]",
            "warning: [vectors] is now called [qdrant_sync]",
            "warning: `datapath` is now called `datapath_type`"
        ]
    );
    let loaded = spec::load(&text).unwrap();
    let h = &loaded.spec.hosts[0];
    assert_eq!(h.qdrant_sync.as_ref().unwrap().database, h.snapshotter.as_ref().unwrap().database);
}

#[test]
fn the_sync_must_read_the_chain_the_snapshotter_writes() {
    let text = spec_with(&format!("{SNAP}[qdrant_sync]\ndatabase = \"/var/lib/gb/other.db\"\n"));
    assert_one(&text, line_of(&text, "other.db"), 12, "but the snapshotter writes its chain to");
}

#[test]
fn values_that_leave_nix_are_refused_where_their_destination_reads_them_differently() {
    let key2 = format!("{KEY}\\nssh-rsa AAAAB3NzaC1yc2E x@y");
    let text = format!(
        "[host]\nname = \"web1\"\nstate_version = \"25.11\"\n\n[[users]]\nname = \"ops\"\nadmin = true\nssh_keys = [\"{KEY}\"]\n\
         [[users]]\nname = \"dev\"\nssh_keys = [\"{key2}\"]\n"
    );
    assert_one(&text, line_of(&text, "ssh-rsa"), 13, "write one key per string, on one line");
    for (section, line, needle) in [
        ("[boot]", "kernel_params = [\"quiet splash\"]", "kernel parameter \"quiet splash\" is refused"),
        ("[boot]", "kernel_modules = [\"kvm\\nevil\"]", "kernel module \"kvm\\nevil\" is refused"),
        ("[boot.sysctl]", "\"vm.swappiness\" = \"10\\nkernel.sysrq = 1\"", "sysctl \"vm.swappiness\" is refused"),
        ("[dbus]", "state_file = \"/var/lib/op dbus/%h.json\"", "state_file \"/var/lib/op dbus/%h.json\" is refused"),
    ] {
        let text = spec_with(&format!("{section}\n{line}\n"));
        let d = diagnostics(&text);
        assert_eq!(d.len(), 1, "{line}: {d:#?}");
        assert!(d[0].2.contains(needle), "{line}: {:?}", d[0].2);
    }
    let text = spec_with(
        "[[network.bridges]]\nname = \"br0\"\n[virtualization]\nlibvirt = true\novs_networks = { \"a<b\" = \"br0\" }\n",
    );
    assert_one(&text, line_of(&text, "a<b"), 19, "libvirt network name \"a<b\" is refused");
}

#[test]
fn an_unknown_key_does_not_hide_the_other_mistakes() {
    let text = spec_with(
        "[ssh]\nprot = 22\n\
         [snapshotter]\nsource = \"/srv\"\nsnapshot_dir = \"/snap\"\ndatabase = \"/var/lib/gb/c.db\"\ninterval = \"1m\"\nretention = \"1s\"\n\
         [qdrant_sync]\nbatch = 0\n\
         [[network.bridges]]\nname = \"en*\"\nextra_flows = [\"priority=5\"]\n\
         [boot]\nvfio_ids = [\"nope\"]\n",
    );
    let d = diagnostics(&text);
    let messages: Vec<&str> = d.iter().map(|x| x.2.as_str()).collect();
    for needle in [
        "unknown key `prot`",
        "retention 1s is shorter than interval 1m",
        "batch is 0",
        "interface name \"en*\" is invalid",
        "extra flow \"priority=5\" has no actions=",
        "\"nope\" is not a PCI vendor:device id",
    ] {
        assert!(messages.iter().any(|m| m.contains(needle)), "missing {needle:?} in {messages:#?}");
    }
    // In file order.
    let lines: Vec<usize> = d.iter().map(|x| x.0).collect();
    assert!(lines.windows(2).all(|w| w[0] <= w[1]), "{d:#?}");
}

#[test]
fn system_folders_are_not_given_to_the_daemons() {
    for (db, dir, needle) in [
        ("/home/chain.db", "/var/lib/gb/snapshots", "/home is a system folder"),
        ("/var/lib/gb/chain.db", "/var/lib", "/var/lib is a system folder"),
        ("/var/lib/gb/chain.db", "/", "/ is a system folder"),
        ("/var/lib/gb/chain.db", "/var/lib/gb", "the snapshot folder is the chain database's folder"),
    ] {
        let text =
            spec_with(&format!("[snapshotter]\nsource = \"/srv\"\nsnapshot_dir = \"{dir}\"\ndatabase = \"{db}\"\n"));
        let d = diagnostics(&text);
        assert!(d.iter().any(|x| x.2.contains(needle)), "{db} {dir}: {d:#?}");
    }
}

#[test]
fn specs_that_make_a_server_that_cannot_work_are_refused() {
    let disk = "[disk]\ndevice = \"/dev/sda\"\n";
    for (extra, needle) in [
        (format!("{disk}esp_size = \"1KiB\"\n"), "an EFI system partition of 1KiB is too small"),
        ("[disk]\ndevice = \"/dev/../etc/passwd\"\n".to_string(), "is not a plain /dev path"),
        (format!("{disk}[[disk.subvolumes]]\nname = \"@b\"\nmount = \"/boot\"\n"), "where the EFI system partition is mounted"),
        (format!("{disk}[[disk.subvolumes]]\nname = \"@h\"\nmount = \"/home/..\"\n"), "is not a normalised path"),
        (
            "[[network.bridges]]\nname = \"br0\"\naddresses = [\"10.0.0.1/16\"]\n[[network.bridges]]\nname = \"br1\"\naddresses = [\"10.0.5.1/24\"]\n".to_string(),
            "subnet 10.0.5.1/24 overlaps 10.0.0.1/16, on another bridge",
        ),
        ("[virtualization]\nnovnc_port = 6080\n".to_string(), "libvirt is off"),
        ("[monitoring]\ngrafana_port = 80\n".to_string(), "Grafana cannot listen on port 80"),
    ] {
        let d = diagnostics(&spec_with(&extra));
        assert!(d.iter().any(|x| x.2.contains(needle)), "{extra}: {d:#?}");
    }
    let text = spec_with("")
        .replace("name = \"web1\"", "name = \"web1\"\ntime_zone = \"Europe/Berln\"\nlocale = \"en_US.UTF8\"");
    let d = diagnostics(&text);
    assert!(
        d.iter().any(|x| x.2.contains("\"Europe/Berln\" is not a time zone") && x.3.contains("Europe/Berlin")),
        "{d:#?}"
    );
    assert!(d.iter().any(|x| x.2.contains("\"en_US.UTF8\" is not a locale")), "{d:#?}");
    // A snapshot policy with billions of live snapshots is named.
    let text = spec_with(
        "[snapshotter]\nsource = \"/srv\"\nsnapshot_dir = \"/var/lib/gb/snaps\"\ndatabase = \"/var/lib/gb/c.db\"\ninterval = \"1ms\"\nretention = \"366d\"\n",
    );
    let d = diagnostics(&text);
    assert!(d.iter().any(|x| x.2.contains("warning: this policy keeps up to 31622400001 live snapshots")), "{d:#?}");
}

#[test]
fn a_link_local_ipv6_gateway_is_accepted() {
    let text = spec_with(
        "[[network.bridges]]\nname = \"br0\"\nuplink = \"eth0\"\naddresses = [\"2001:db8::2/64\"]\ngateway = \"fe80::1\"\n",
    );
    assert!(diagnostics(&text).is_empty(), "{:#?}", diagnostics(&text));
}

#[test]
fn host_names_are_unique_whatever_their_case() {
    let text = format!(
        "[defaults]\nstate_version = \"25.11\"\n[[defaults.users]]\nname = \"ops\"\nadmin = true\nssh_keys = [\"{KEY}\"]\n\
         [[hosts]]\nname = \"Web1\"\n[[hosts]]\nname = \"web1\"\n"
    );
    let d = diagnostics(&text);
    assert!(d.iter().any(|x| x.2.contains("\"web1\" is used twice") && x.3.contains("[[hosts]] entry 1")), "{d:#?}");
}

#[test]
fn type_and_form_mistakes_say_what_to_write() {
    for (extra, needle) in [
        ("[ssh]\nport = \"2222\"\n", "`port = 2222`"),
        (
            "[snapshotter]\nsource = \"/srv\"\nsnapshot_dir = \"/var/lib/gb/s\"\ndatabase = \"/var/lib/gb/c.db\"\ninterval = 1\n",
            "`interval = \"1s\"`",
        ),
        ("[disk]\ndevice = \"/dev/sda\"\nesp_size = \"512MB\"\n", "\"512MiB\" (binary units)"),
        (
            "[snapshotter]\nsource = \"/srv\"\nsnapshot_dir = \"/var/lib/gb/s\"\ndatabase = \"/var/lib/gb/c.db\"\nretention = \"5 min\"\n",
            "\"5m\"",
        ),
        ("[disk]\ndevice = \"/dev/sda\"\n[disk.subvolumes]\nname = \"@\"\nmount = \"/\"\n", "`[[disk.subvolumes]]`"),
    ] {
        let d = diagnostics(&spec_with(extra));
        assert!(d.iter().any(|x| x.3.contains(needle)), "{extra}: {d:#?}");
    }
    let text = spec_with("").replace("state_version = \"25.11\"", "state_version = 25.11");
    let d = diagnostics(&text);
    assert!(d.iter().any(|x| x.3.contains("`state_version = \"25.11\"`")), "{d:#?}");
}

#[test]
fn a_bridge_has_one_ipv4_and_one_ipv6_gateway_at_most() {
    let ok = spec_with(
        "[[network.bridges]]\nname = \"br0\"\nuplink = \"eth0\"\naddresses = [\"203.0.113.10/32\", \"2001:db8::2/64\"]\n\
         gateway = [\"203.0.113.10\", \"fe80::1\"]\n",
    );
    assert!(diagnostics(&ok).is_empty(), "{:#?}", diagnostics(&ok));
    let text = spec_with(
        "[[network.bridges]]\nname = \"br0\"\naddresses = [\"10.0.0.2/24\"]\ngateway = [\"10.0.0.1\", \"10.0.0.3\"]\n",
    );
    let d = diagnostics(&text);
    assert!(d.iter().any(|x| x.2.contains("a second IPv4 gateway 10.0.0.3")), "{d:#?}");
}

#[test]
fn the_console_stays_on_loopback_unless_exposed_behind_a_password() {
    let base = "[virtualization]\nlibvirt = true\nnovnc_port = 6080\n";
    let d = diagnostics(&spec_with(&format!("{base}[firewall]\nallowed_tcp_ports = [6080]\n")));
    assert!(d.iter().any(|x| x.2.contains("warning: port 6080 is the noVNC console's")), "{d:#?}");
    let exposed = |expose: &str| diagnostics(&spec_with(&format!("{base}novnc_expose = {expose}\n")));
    assert!(exposed("{ address = \"0.0.0.0\", password_file = \"/run/keys/vnc\" }").is_empty());
    let d = exposed("{ address = \"127.0.0.1\", password_file = \"/run/keys/vnc\" }");
    assert!(d.iter().any(|x| x.2.contains("loopback address exposes nothing")), "{d:#?}");
    let d = exposed("{ address = \"0.0.0.0\", password_file = \"/nix/store/abc-vnc\" }");
    assert!(d.iter().any(|x| x.2.contains("outside the Nix store")), "{d:#?}");
    let d = exposed("{ address = \"0.0.0.0\" }");
    assert!(d.iter().any(|x| x.2.contains("password_file")), "a password is required: {d:#?}");
}

#[test]
fn the_local_qdrant_keeps_its_data_in_a_folder_of_its_own() {
    let d = diagnostics(&spec_with("[qdrant]\ndata_dir = \"/var/lib/vectors\"\n"));
    assert!(d.iter().any(|x| x.2.contains("[qdrant_sync] url does not point at this host")), "{d:#?}");
    let d = diagnostics(&spec_with("[qdrant]\ndata_dir = \"/var/lib\"\n"));
    assert!(d.iter().any(|x| x.2.contains("Qdrant's folder must be its own")), "{d:#?}");
    let d = diagnostics(&spec_with("[remote_server]\nserial_console = \"ttyS0 quiet\"\n"));
    assert!(d.iter().any(|x| x.2.contains("serial_console \"ttyS0 quiet\" is refused")), "{d:#?}");
}

#[test]
fn a_compression_level_other_than_the_roots_is_named_with_the_one_that_applies() {
    let disk = "[disk]\ndevice = \"/dev/vda\"\n[[disk.subvolumes]]\nname = \"@\"\nmount = \"/\"\ncompress = \"zstd:3\"\n\
                [[disk.subvolumes]]\nname = \"@db\"\nmount = \"/var/lib/db\"\ncompress = \"zstd:9\"\n";
    let text = spec_with(disk);
    let d = diagnostics(&text);
    assert_eq!(d.len(), 1, "{d:#?}");
    assert_eq!((d[0].0, d[0].1), (line_of(&text, "zstd:9"), 12));
    assert!(d[0].2.contains("warning: subvolume \"@db\" gets zstd compression at the level of the first mount (\"/\": \"zstd:3\"), not level 9"), "{d:#?}");
    assert!(diagnostics(&text.replace("zstd:9", "zstd:3")).is_empty());
    assert!(diagnostics(&text.replace("zstd:9", "lzo")).is_empty(), "another algorithm is per subvolume");
}

#[test]
fn plain_interfaces_are_addressed_like_bridges_and_stay_outside_open_vswitch() {
    let ok = "[[network.interfaces]]\nname = \"enp2s0\"\naddresses = [\"203.0.113.10/32\", \"2001:db8::2/64\"]\ngateway = [\"203.0.113.1\", \"fe80::1\"]\n";
    assert!(diagnostics(&spec_with(ok)).is_empty(), "{:#?}", diagnostics(&spec_with(ok)));
    let d = diagnostics(&spec_with(
        "[[network.interfaces]]\nname = \"enp2s0\"\naddresses = [\"10.0.0.2/24\"]\ngateway = \"10.9.0.1\"\n",
    ));
    assert!(d.iter().any(|x| x.2.contains("gateway 10.9.0.1 is outside the interface's subnets")), "{d:#?}");
    let held = "[[network.bridges]]\nname = \"ovsbr0\"\nuplink = \"enp1s0\"\n[[network.interfaces]]\nname = \"enp1s0\"\ndhcp = true\n";
    let text = spec_with(held);
    let d = diagnostics(&text);
    assert!(d.iter().any(|x| x.2.contains("interface \"enp1s0\" is part of Open vSwitch")), "{d:#?}");
    let d = diagnostics(&spec_with("[[network.interfaces]]\nname = \"en*\"\ndhcp = true\n"));
    assert!(d.iter().any(|x| x.2.contains("interface name \"en*\" is invalid")), "{d:#?}");
    let overlap = "[[network.bridges]]\nname = \"ovsbr1\"\naddresses = [\"10.0.0.1/24\"]\n[[network.interfaces]]\nname = \"enp2s0\"\naddresses = [\"10.0.0.2/24\"]\n";
    let d = diagnostics(&spec_with(overlap));
    assert!(d.iter().any(|x| x.2.contains("overlaps 10.0.0.1/24, on another bridge or interface")), "{d:#?}");
}

#[test]
fn retention_tiers_must_nest_and_count_in_the_live_bound() {
    let snaps = "[snapshotter]\nsource = \"/srv\"\nsnapshot_dir = \"/snap\"\ndatabase = \"/var/lib/gb/c.db\"\n";
    let ok = format!(
        "{snaps}[[snapshotter.tiers]]\nevery = \"1m\"\nkeep = \"1h\"\n[[snapshotter.tiers]]\nevery = \"1h\"\nkeep = \"1d\"\n"
    );
    assert!(diagnostics(&spec_with(&ok)).is_empty(), "{:#?}", diagnostics(&spec_with(&ok)));
    let spec = spec::load(&spec_with(&ok)).unwrap().spec;
    // 61 for the minute of retention, 61 for the hour, 25 for the day.
    assert_eq!(spec.hosts[0].snapshotter.as_ref().unwrap().max_live_snapshots(), 61 + 60 + 24);
    let bad = ok.replace("every = \"1h\"", "every = \"90s\"");
    let text = spec_with(&bad);
    let d = diagnostics(&text);
    assert_eq!(d.len(), 1, "{d:#?}");
    assert_eq!(d[0].0, line_of(&text, "every = \"90s\""));
    assert!(d[0].2.contains("every 90s is not a multiple of the tier before's 1m"), "{d:#?}");
}

#[test]
fn deploy_settings_are_refused_where_ssh_would_read_them_as_options_or_fail() {
    let cases: [(&str, &str); 7] = [
        ("address = \"-oProxyCommand=reboot\"", "is not a DNS name or an IP address"),
        ("address = \"web 1\"", "is not a DNS name or an IP address"),
        ("user = \"root\"", "deploy user root cannot log in"),
        ("user = \"nobody\"", "deploy user \"nobody\" is not an admin with an SSH key"),
        ("port = 0", "deploy port 0 is not a port"),
        ("jump = \"ops@-J:22\"", "jump host \"ops@-J:22\" is not [user@]host[:port]"),
        ("tags = [\"Canary!\"]", "tag \"Canary!\" is not a valid name"),
    ];
    for (line, needle) in cases {
        let text = spec_with(&format!("\n[deploy]\n{line}\n"));
        let at = line_of(&text, line);
        // At the value (a list's element for tags).
        let col = line.find("[\"").map(|i| i + 2).unwrap_or_else(|| line.find('=').unwrap() + 3);
        assert_one(&text, at, col, needle);
    }
    let text = spec_with(
        "\n[deploy]\naddress = \"2001:db8::7\"\nuser = \"ops\"\njump = \"[2001:db8::1]:2222\"\nbuild_on = \"remote\"\ntags = [\"edge\"]\n",
    );
    assert!(diagnostics(&text).is_empty(), "{:#?}", diagnostics(&text));
    let text = spec_with("\n[deploy]\nbuild_on = \"cloud\"\n");
    assert!(!diagnostics(&text).is_empty(), "an unknown build location is refused");
}
