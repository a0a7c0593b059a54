//! Unit tests for facteur-config: defaults, the reference file, and every
//! kind of refusal with its key and reason.

use super::*;

fn err(text: &str) -> ConfigError {
    match Config::parse(text, "test.toml") {
        Ok(c) => panic!("accepted: {c:?}"),
        Err(e) => e,
    }
}

#[test]
fn empty_file_gives_defaults() {
    let c = Config::parse("", "t").unwrap();
    assert_eq!(c.paths.spool_dir, PathBuf::from("/var/spool/facteur"));
    assert_eq!(c.lmtp_socket(), PathBuf::from("/run/facteur/lmtp.sock"));
    assert_eq!(c.lmtp_socket_mode(), 0o660);
    assert_eq!(c.lmtpd.max_message_size, ByteSize(50 << 20));
    assert_eq!(c.directory.recipient_delimiter, "+");
    assert_eq!(c.lmtpd.over_quota, OverQuota::Reject);
}

#[test]
fn the_reference_file_parses_and_matches_the_defaults() {
    let text = include_str!("../../../etc/facteur.toml");
    let c = Config::parse(text, "etc/facteur.toml").unwrap();
    let d = Config::parse("", "t").unwrap();
    assert_eq!(c.paths.spool_dir, d.paths.spool_dir);
    assert_eq!(c.lmtpd.max_message_size, d.lmtpd.max_message_size);
    assert_eq!(c.lmtpd.timeout, d.lmtpd.timeout);
    assert_eq!(c.lmtpd.max_connections, d.lmtpd.max_connections);
    assert_eq!(c.store.mail_root, d.store.mail_root);
    assert_eq!(c.pop3d.timeout, d.pop3d.timeout);
    assert_eq!(c.pop3d.max_connections, d.pop3d.max_connections);
    assert_eq!(c.pop3d.max_errors, d.pop3d.max_errors);
    assert_eq!(c.auth, d.auth);
    assert_eq!(format!("{:?}", c.trust), format!("{:?}", d.trust));
    assert_eq!(c.scheduling.batch, d.scheduling.batch);
}

#[test]
fn auth_limits_are_checked() {
    let c = Config::parse(
        "[auth]\nmax_parallel_hashes = 2\nmax_delay = \"1m\"\ntrust_logins_for = 0\n",
        "t",
    )
    .unwrap();
    assert_eq!(c.auth.max_parallel_hashes, 2);
    assert_eq!(c.auth.max_delay, Seconds(60));
    assert_eq!(c.auth.max_queued_per_address, 8);
    for (text, key) in [
        ("max_parallel_hashes = 65", "auth.max_parallel_hashes"),
        ("max_queued_per_address = 0", "auth.max_queued_per_address"),
        ("max_queued = 4", "auth.max_queued"),
        ("max_delay = 0", "auth.max_delay"),
        (
            "forget_failures_after = \"10s\"",
            "auth.forget_failures_after",
        ),
    ] {
        let e = err(&format!("[auth]\n{text}\n"));
        assert_eq!(e.key.as_deref(), Some(key), "{text}: {e}");
    }
    assert_eq!(
        err("[auth]\nslots = 3\n").key.as_deref(),
        Some("auth.slots")
    );
}

#[test]
fn values_with_units() {
    let c = Config::parse("[lmtpd]\nmax_message_size = \"20M\"\ntimeout = \"2m\"\nlisten = [\"127.0.0.1:2024\", \"[::1]:2024\"]\n", "t").unwrap();
    assert_eq!(c.lmtpd.max_message_size, ByteSize(20 << 20));
    assert_eq!(c.lmtpd.timeout, Seconds(120));
    assert_eq!(c.lmtpd.listen.len(), 2);
}

#[test]
fn unknown_key_is_named() {
    let e = err("[lmtpd]\nmax_conections = 5\n");
    assert_eq!(e.file, "test.toml");
    assert!(e.reason.contains("max_conections"), "{e}");
    assert!(e.reason.contains("line 2"), "{e}");
    let e = err("colour = \"blue\"\n");
    assert!(e.to_string().contains("colour"), "{e}");
}

#[test]
fn wrong_type_names_the_key() {
    let e = err("[lmtpd]\nmax_connections = \"many\"\n");
    assert_eq!(e.key.as_deref(), Some("lmtpd.max_connections"), "{e}");
    let e = err("[lmtpd]\nmax_message_size = \"lots\"\n");
    assert_eq!(e.key.as_deref(), Some("lmtpd.max_message_size"), "{e}");
    assert!(e.reason.contains("\"lots\""), "{e}");
}

#[test]
fn bad_address_names_the_key() {
    let e = err("[lmtpd]\nlisten = [\"127.0.0.1:2024\", \"nowhere\"]\n");
    assert_eq!(e.key.as_deref(), Some("lmtpd.listen[1]"), "{e}");
}

#[test]
fn bad_paths_modes_and_values() {
    assert_eq!(
        err("[paths]\nspool_dir = \"spool\"\n").key.as_deref(),
        Some("paths.spool_dir")
    );
    assert_eq!(
        err("[lmtpd]\nsocket_mode = \"rw\"\n").key.as_deref(),
        Some("lmtpd.socket_mode")
    );
    assert_eq!(
        err("[lmtpd]\nsocket_mode = \"1777\"\n").key.as_deref(),
        Some("lmtpd.socket_mode")
    );
    assert_eq!(
        err("[lmtpd]\nmax_connections = 0\n").key.as_deref(),
        Some("lmtpd.max_connections")
    );
    assert_eq!(
        err("[lmtpd]\nover_quota = \"maybe\"\n").key.as_deref(),
        Some("lmtpd.over_quota")
    );
    assert_eq!(
        err("hostname = \"bad host\"\n").key.as_deref(),
        Some("hostname")
    );
    assert_eq!(
        err("[directory]\nrecipient_delimiter = \"x\"\n")
            .key
            .as_deref(),
        Some("directory.recipient_delimiter")
    );
    assert!(err("[lmtpd\n").reason.contains("line 1"));
}

#[test]
fn missing_file_is_reported() {
    let e = Config::load(Path::new("/nonexistent/facteur.toml")).unwrap_err();
    assert_eq!(e.file, "/nonexistent/facteur.toml");
    assert!(e.reason.contains("cannot read"), "{e}");
}

#[test]
fn load_records_the_source() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("f.toml");
    std::fs::write(&p, "hostname = \"mx.example.test\"\n").unwrap();
    let c = Config::load(&p).unwrap();
    assert_eq!(c.source, p);
    assert_eq!(c.hostname(), "mx.example.test");
}

#[test]
fn smtpd_and_qmgr_sections() {
    let c = Config::parse("[smtpd]\nmx = [\"127.0.0.1:2525\"]\nmynetworks = [\"10.0.0.0/8\", \"2001:db8::/32\", \"192.0.2.1\"]\n[qmgr]\nlmtp = \"inet:127.0.0.1:2024\"\nmin_backoff = \"1s\"\n", "t").unwrap();
    assert_eq!(c.smtpd.mx.len(), 1);
    let n = &c.smtpd.mynetworks;
    assert!(n[0].contains("10.1.2.3".parse().unwrap()));
    assert!(!n[0].contains("11.1.2.3".parse().unwrap()));
    assert!(n[1].contains("2001:db8::1".parse().unwrap()));
    assert!(n[2].contains("192.0.2.1".parse().unwrap()));
    assert!(!n[2].contains("192.0.2.2".parse().unwrap()));
    assert!(n[0].contains("::ffff:10.0.0.1".parse().unwrap()));
    assert_eq!(c.qmgr.min_backoff, Seconds(1));
    assert_eq!(c.qmgr_socket(), PathBuf::from("/run/facteur/qmgr.sock"));
    let d = Config::parse("", "t").unwrap();
    assert!(d.smtpd.mynetworks[0].contains("127.0.0.1".parse().unwrap()));
    assert!(d.smtpd.mynetworks[1].contains("::1".parse().unwrap()));
    assert_eq!(
        err("[smtpd]\nmynetworks = [\"10.0.0.0/33\"]\n")
            .key
            .as_deref(),
        Some("smtpd.mynetworks[0]")
    );
    assert_eq!(
        err("[qmgr]\nlmtp = \"tcp:x\"\n").key.as_deref(),
        Some("qmgr.lmtp")
    );
    assert_eq!(
        err("[qmgr]\nmin_backoff = \"2h\"\n").key.as_deref(),
        Some("qmgr.min_backoff")
    );
}

#[test]
fn pop3d_section() {
    let d = Config::parse("", "t").unwrap();
    assert!(d.pop3d.listen.is_empty() && d.pop3d.listen_tls.is_empty());
    assert_eq!(d.pop3d.timeout, Seconds(600));
    assert!(!d.pop3d.allow_plaintext_auth_on_loopback);
    let c = Config::parse(
        "[pop3d]\nlisten = [\"127.0.0.1:2110\"]\nlisten_tls = [\"127.0.0.1:2995\"]\ntimeout = \"15m\"\nmax_errors = 5\nallow_plaintext_auth_on_loopback = true\n",
        "t",
    )
    .unwrap();
    assert_eq!(c.pop3d.listen[0].port(), 2110);
    assert_eq!(c.pop3d.listen_tls[0].port(), 2995);
    assert_eq!(c.pop3d.timeout, Seconds(900));
    assert_eq!(c.pop3d.max_errors, 5);
    assert!(c.pop3d.allow_plaintext_auth_on_loopback);
    assert_eq!(
        err("[pop3d]\nmax_errors = 0\n").key.as_deref(),
        Some("pop3d.max_errors")
    );
    assert_eq!(
        err("[pop3d]\ntimeout = 0\n").key.as_deref(),
        Some("pop3d.timeout")
    );
    assert_eq!(
        err("[pop3d]\nmax_connections_per_ip = 0\n").key.as_deref(),
        Some("pop3d.max_connections_per_ip")
    );
    assert_eq!(
        err("[pop3d]\nlisten = [\"127.0.0.1:110\"]\nlisten_tls = [\"127.0.0.1:110\"]\n")
            .key
            .as_deref(),
        Some("pop3d.listen_tls")
    );
    assert_eq!(
        err("[pop3d]\nlisten = [\"localhost\"]\n").key.as_deref(),
        Some("pop3d.listen[0]")
    );
    assert!(
        err("[pop3d]\nlisten_ssl = []\n")
            .reason
            .contains("listen_ssl")
    );
}

#[test]
fn sections_under_a_root_name_its_directories() {
    let root = Path::new("/srv/fe \"dev\"");
    let c = Config::parse(&sections_under(root), "t").unwrap();
    assert_eq!(c.paths.spool_dir, root.join("spool"));
    assert_eq!(c.paths.state_dir, root.join("state"));
    assert_eq!(c.paths.run_dir, root.join("run"));
    assert_eq!(c.tls.cert, root.join("tls/cert.pem"));
    assert_eq!(c.tls.key, root.join("tls/key.pem"));
    assert_eq!(c.directory.path, root.join("state/directory.sqlite"));
    assert_eq!(c.store.mail_root, root.join("mail"));
    assert_eq!(c.aliases.file, root.join("aliases"));
}

#[test]
fn system_domains_default_to_the_host_name_and_localhost() {
    let c = Config::parse("hostname = \"Mail.Example.Org.\"\n", "t").unwrap();
    assert_eq!(c.aliases.file, Path::new("/etc/aliases"));
    assert_eq!(c.system_domains(), ["mail.example.org", "localhost"]);
    let c = Config::parse(
        "hostname = \"m.example.org\"\n[aliases]\ndomains = [\"Box.Example.Org\"]\n",
        "t",
    )
    .unwrap();
    assert_eq!(c.system_domains(), ["box.example.org"]);
}

#[test]
fn srs_and_outgoing_signing_keys() {
    let c = Config::parse("hostname = \"mx.example.org\"\n", "t").unwrap();
    assert!(c.srs.enabled && c.trust.outgoing.sign);
    assert_eq!(c.srs_domain(), "mx.example.org");
    assert_eq!(c.trust.outgoing.rotation_delay.0, 2 * 86_400);
    let c = Config::parse("[srs]\ndomain = \"SRS.Example.org.\"\n", "t").unwrap();
    assert_eq!(c.srs_domain(), "srs.example.org");
    assert_eq!(
        err("[srs]\ndomain = \"a b\"\n").key.as_deref(),
        Some("srs.domain")
    );
    assert_eq!(
        err("[srs]\nmax_age = \"1h\"\n").key.as_deref(),
        Some("srs.max_age")
    );
    assert_eq!(
        err("[trust.outgoing]\nmax_parallel = 5000\n")
            .key
            .as_deref(),
        Some("trust.outgoing.max_parallel")
    );
    assert!(
        err("[trust.outgoing]\nsign_all = true\n")
            .to_string()
            .contains("sign_all")
    );
}
