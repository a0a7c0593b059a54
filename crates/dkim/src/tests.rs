use super::*;

fn key(sel: &str, alg: Algorithm, sign_from: i64, retire_at: i64) -> Key {
    Key {
        selector: sel.into(),
        algorithm: alg,
        created: sign_from,
        sign_from,
        retire_at,
    }
}

#[test]
fn ed25519_keys_sign_and_verify_with_ring() {
    use ring::signature::{ED25519, Ed25519KeyPair, UnparsedPublicKey};
    let k = generate(Algorithm::Ed25519).unwrap();
    assert_eq!(k.public.len(), 32);
    let pair = Ed25519KeyPair::from_pkcs8(&k.pkcs8).unwrap();
    let sig = pair.sign(b"message");
    UnparsedPublicKey::new(&ED25519, &k.public)
        .verify(b"message", sig.as_ref())
        .unwrap();
    assert_eq!(public_key(Algorithm::Ed25519, &k.pkcs8).unwrap(), k.public);
}

#[test]
fn rsa_keys_are_2048_bits_and_load_in_ring() {
    use ring::signature::RsaKeyPair;
    let k = generate(Algorithm::Rsa).unwrap();
    let pair = RsaKeyPair::from_pkcs8(&k.pkcs8).unwrap();
    assert_eq!(pair.public().modulus_len(), 256);
    // SubjectPublicKeyInfo: a SEQUENCE with the rsaEncryption OID.
    assert_eq!(k.public[0], 0x30);
    let oid = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
    assert!(k.public.windows(oid.len()).any(|w| w == oid));
    assert_eq!(public_key(Algorithm::Rsa, &k.pkcs8).unwrap(), k.public);
    let txt = txt_record(Algorithm::Rsa, &k.public);
    assert!(txt.starts_with("v=DKIM1; k=rsa; p=MIIBIjAN"), "{txt}");
}

#[test]
fn a_wrong_key_is_an_error_not_a_panic() {
    assert!(public_key(Algorithm::Ed25519, b"garbage").is_err());
    assert!(public_key(Algorithm::Rsa, b"garbage").is_err());
    let ed = generate(Algorithm::Ed25519).unwrap();
    assert!(public_key(Algorithm::Rsa, &ed.pkcs8).is_err());
}

#[test]
fn life_of_a_selector() {
    let mut ring = Keyring::default();
    ring.keys.push(key("a", Algorithm::Ed25519, 100, 0));
    ring.keys.push(key("ar", Algorithm::Rsa, 100, 0));
    assert!(ring.signing(99).is_empty());
    assert_eq!(ring.state(&ring.keys[0], 99), State::Pending);
    let names = |v: Vec<&Key>| v.iter().map(|k| k.selector.clone()).collect::<Vec<_>>();
    assert_eq!(names(ring.signing(100)), ["a", "ar"]);

    // Rotation at 1000: the new keys sign from 1000 + 50, the old ones
    // retire 20 later.
    ring.rotate_in(
        vec![
            key("b", Algorithm::Ed25519, 1050, 0),
            key("br", Algorithm::Rsa, 1050, 0),
        ],
        20,
    );
    assert_eq!(ring.keys[0].retire_at, 1070);
    assert_eq!(ring.keys[1].retire_at, 1070);
    assert_eq!(names(ring.signing(1049)), ["a", "ar"]);
    assert_eq!(ring.state(&ring.keys[2], 1049), State::Pending);
    assert_eq!(names(ring.published(1049)).len(), 4);
    assert_eq!(names(ring.signing(1050)), ["b", "br"]);
    assert_eq!(ring.state(&ring.keys[0], 1050), State::Published);
    assert_eq!(ring.state(&ring.keys[0], 1070), State::Retired);
    assert_eq!(names(ring.published(1070)), ["b", "br"]);

    // A second rotation leaves the retired keys' dates alone.
    ring.rotate_in(vec![key("c", Algorithm::Ed25519, 2000, 0)], 0);
    assert_eq!(ring.keys[0].retire_at, 1070);
    assert_eq!(ring.keys[2].retire_at, 2000);
    assert_eq!(names(ring.signing(2000)), ["c", "br"]);
}

#[test]
fn selectors_are_dated_and_unique() {
    // 2026-12-05 12:00 UTC
    let t = 1_796_472_000;
    let mut ring = Keyring::default();
    let s = ring.new_selector(Algorithm::Ed25519, t);
    assert_eq!(s, "f20261205e");
    ring.keys.push(key(&s, Algorithm::Ed25519, t, 0));
    assert_eq!(ring.new_selector(Algorithm::Ed25519, t), "f20261205e2");
    assert_eq!(ring.new_selector(Algorithm::Rsa, t), "f20261205r");
}

#[test]
fn store_round_trip_with_modes() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let store = KeyStore::new(dir.path().join("dkim"));
    assert!(store.domains().unwrap().is_empty());
    assert_eq!(store.load("example.org").unwrap(), Keyring::default());
    let k = generate(Algorithm::Ed25519).unwrap();
    store.write_private("example.org", "s1", &k.pkcs8).unwrap();
    let mut ring = Keyring::default();
    ring.keys.push(key("s1", Algorithm::Ed25519, 5, 0));
    store.save("example.org", &ring).unwrap();
    assert_eq!(store.load("example.org").unwrap(), ring);
    assert_eq!(store.domains().unwrap(), ["example.org"]);
    assert_eq!(store.read_private("example.org", "s1").unwrap(), k.pkcs8);
    let mode = |p: PathBuf| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(store.key_path("example.org", "s1")), 0o600);
    assert_eq!(mode(store.keyring_path("example.org")), 0o644);
}

#[test]
fn names_that_could_leave_the_store_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = KeyStore::new(dir.path());
    for d in ["../etc", "a/b", "", "Example.org", ".", "a..b"] {
        assert!(store.load(d).is_err(), "{d}");
    }
    for s in ["../x", "a/b", "", "-x", "a.b"] {
        assert!(store.read_private("example.org", s).is_err(), "{s}");
    }
    assert!(
        parse_keyring(
            b"[[key]]\nselector = \"../x\"\nalgorithm = \"rsa\"\ncreated = 1\nsign_from = 1\n"
        )
        .is_err()
    );
    assert!(
        parse_keyring(
            b"[[key]]\nselector = \"x\"\nalgorithm = \"dsa\"\ncreated = 1\nsign_from = 1\n"
        )
        .is_err()
    );
    assert!(parse_keyring(b"\xff").is_err());
}

#[test]
fn pem_round_trip() {
    let der: Vec<u8> = (0..=255u8).collect();
    let pem = pem_encode("PRIVATE KEY", &der);
    assert!(pem.lines().all(|l| l.len() <= 64));
    assert_eq!(pem_decode("PRIVATE KEY", pem.as_bytes()).unwrap(), der);
    assert!(
        pem_decode(
            "PRIVATE KEY",
            b"-----BEGIN PRIVATE KEY-----\n!!\n-----END PRIVATE KEY-----\n"
        )
        .is_none()
    );
    assert!(pem_decode("PRIVATE KEY", b"").is_none());
}
