//! TURN over TLS with a given certificate (`turn.tls_cert`/`turn.tls_key`, a format
//! extension): a CA and a server certificate made with rcgen into a temporary folder, the
//! `turn` service on the virtual fabric serving that certificate, and a client that trusts
//! only the CA relaying through it; the self-signed default still works; bad files are
//! refused when the scenario is loaded.

mod common;

use common::World;
use harness::agents::tls::client_trusting;
use harness::agents::turn_client::{TurnCheck, TurnCheckConfig, TurnCheckOutcome};
use relay::turn::Transport;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// A temporary folder, removed when dropped (also when a test panics).
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("pinhole-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes `ca.pem`, `server.pem` (for 203.0.113.5, signed by the CA), `server.key` and an
/// unrelated `other.key` into `dir`.
fn make_pki(dir: &Path) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "pinhole test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let server = rcgen::CertificateParams::new(vec!["203.0.113.5".to_string()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
    std::fs::write(dir.join("server.pem"), server.pem()).unwrap();
    std::fs::write(dir.join("server.key"), key.serialize_pem()).unwrap();
    let other = rcgen::KeyPair::generate().unwrap();
    std::fs::write(dir.join("other.key"), other.serialize_pem()).unwrap();
}

fn scenario(tls: &str) -> String {
    format!(
        r#"
version: 1
name: turn tls certificate
fabric: virtual
networks: {{ internet: 203.0.113.0/24, home: 10.0.1.0/24 }}
nats:
  nat: {{ inside: home, outside: {{ network: internet, addresses: [203.0.113.11] }}, type: port-restricted }}
hosts:
  alice: {{ network: home }}
  server: {{ network: internet, address: 203.0.113.5 }}
  peer: {{ network: internet, address: 203.0.113.7 }}
services:
  server:
    turn: {{ port: 3478, realm: pinhole, users: {{ alice: secret }}, relay_ports: 50000-50099{tls} }}
"#
    )
}

fn check(w: &mut World, tls: Option<Arc<rustls::ClientConfig>>) -> TurnCheckOutcome {
    let alice = w.sim.topology().host_id("alice").unwrap();
    let config = TurnCheckConfig {
        server: "203.0.113.5:5349".parse().unwrap(),
        transport: Transport::Tcp,
        username: "alice".into(),
        password: "secret".into(),
        peer: "203.0.113.7:3480".parse().unwrap(),
        channel: true,
        count: 10,
        size: 100,
        timeout: Duration::from_secs(5),
        seed: 1,
        proxy: None,
        tls: true,
    };
    let mut c = match tls {
        Some(t) => TurnCheck::start_with_tls(&mut w.sim, alice, config, t).unwrap(),
        None => TurnCheck::start(&mut w.sim, alice, config).unwrap(),
    };
    w.drive(&mut c, Duration::from_secs(20));
    c.outcome().clone()
}

#[test]
fn a_given_certificate_is_served_and_verifies_against_its_ca() {
    let dir = TempDir::new("turn-tls-given");
    make_pki(&dir.0);
    let trust_ca = client_trusting(&std::fs::read(dir.0.join("ca.pem")).unwrap()).unwrap();

    // Relative paths: resolved against the scenario file's folder.
    let yaml = scenario(", tls_port: 5349, tls_cert: server.pem, tls_key: server.key");
    let mut w = World::new_at(&yaml, &dir.0.join("turn.yaml"), 5, 3480);
    let o = check(&mut w, Some(Arc::clone(&trust_ca)));
    assert!(o.passed(), "{o:?}");
    assert_eq!((o.sent, o.received), (10, 10));

    // The self-signed default: the accept-anything client relays, the CA-only one fails
    // the handshake.
    let mut w = World::new(&scenario(", tls_port: 5349"), 5, 3480);
    let o = check(&mut w, None);
    assert!(o.passed(), "{o:?}");
    let o = check(&mut w, Some(trust_ca));
    assert!(!o.passed(), "{o:?}");
    assert!(o.error.as_deref().unwrap_or("").contains("TLS"), "{o:?}");
}

#[test]
fn bad_certificate_files_are_refused_at_load() {
    let dir = TempDir::new("turn-tls-bad");
    make_pki(&dir.0);
    let file = dir.0.join("turn.yaml");
    let load_error = |tls: &str| -> String {
        match harness::scenario::load_str(&scenario(tls), &file) {
            Ok(_) => panic!("accepted: {tls}"),
            Err(e) => e.to_string(),
        }
    };
    let e = load_error(", tls_port: 5349, tls_cert: missing.pem, tls_key: server.key");
    assert!(
        e.contains("cannot read") && e.contains("missing.pem"),
        "{e}"
    );
    let e = load_error(", tls_port: 5349, tls_cert: server.pem, tls_key: other.key");
    assert!(e.contains("do not go together"), "{e}");
    let e = load_error(", tls_port: 5349, tls_cert: server.key, tls_key: server.key");
    assert!(e.contains("no certificate"), "{e}");
    let e = load_error(", tls_port: 5349, tls_cert: server.pem, tls_key: server.pem");
    assert!(e.contains("no private key"), "{e}");
    let e = load_error(", tls_port: 5349, tls_cert: server.pem");
    assert!(e.contains("go together"), "{e}");
    let e = load_error(", tls_cert: server.pem, tls_key: server.key");
    assert!(e.contains("without `tls_port`"), "{e}");
    // password_algorithms: keywords, no duplicates.
    let e = load_error(", password_algorithms: [sha1]");
    assert!(e.contains("sha1"), "{e}");
    let e = load_error(", password_algorithms: [md5, md5]");
    assert!(e.contains("twice"), "{e}");
    // …and reach the server's configuration.
    use relay::turn::PasswordAlgorithm::{Md5, Sha256};
    for (ok, want) in [
        (", password_algorithms: [md5, sha256]", vec![Md5, Sha256]),
        (", password_algorithms: []", vec![]),
        ("", vec![Sha256, Md5]),
    ] {
        let s = harness::scenario::load_str(&scenario(ok), &file).unwrap();
        let cell = s.cells().unwrap().remove(0);
        let turn = cell.spec.services[0].turn.as_ref().unwrap();
        let config =
            harness::run::services::turn_config("203.0.113.5".parse().unwrap(), turn, None, 1);
        assert_eq!(config.turn.password_algorithms, want, "{ok}");
    }
}
