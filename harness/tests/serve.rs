//! `pinhole serve turn` on loopback: it says where it listens, answers STUN Binding and
//! TURN (over UDP and TCP, checked with `pinhole turn-client`, whose loopback peer the
//! deny list refuses with 403 — loopback is all a test may reach), and stops cleanly on
//! SIGTERM. Also the clear errors for bad arguments.

use relay::stun::{Class, Message, Method, TransactionId};
use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn pinhole() -> Command {
    Command::new(env!("CARGO_BIN_EXE_pinhole"))
}

/// Kills the server if the test panics before stopping it.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The stdout lines of a running server.
type Lines = std::io::Lines<BufReader<std::process::ChildStdout>>;

/// Start `pinhole serve ARGS…` and read its banner up to "serving until SIGINT or
/// SIGTERM": the guarded server, its remaining stdout lines, and the banner.
fn serve(args: &[&str]) -> (Guard, Lines, String) {
    let child = pinhole()
        .arg("serve")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut g = Guard(child);
    let mut lines = BufReader::new(g.0.stdout.take().unwrap()).lines();
    let mut banner = String::new();
    while !banner.contains("serving until SIGINT or SIGTERM") {
        banner.push_str(&lines.next().expect("the banner").unwrap());
        banner.push('\n');
    }
    (g, lines, banner)
}

/// SIGTERM: a clean stop, exit 0, and "stopped" said.
fn stops_cleanly_on_sigterm(g: &mut Guard, lines: impl Iterator<Item = std::io::Result<String>>) {
    let pid = g.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = g.0.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(rest.iter().any(|l| l.contains("stopped")), "{rest:?}");
}

#[test]
fn serve_turn_answers_and_stops_on_sigterm() {
    let port = 20_000 + (std::process::id() % 20_000) as u16;
    let listen = format!("127.0.0.1:{port}");
    let tls_port = (port + 1).to_string();
    let turn = ["turn", "--listen", &listen, "--user", "alice:secret"];
    let (mut g, lines, banner) = serve(
        &[
            &turn[..],
            &["--relay-ports", "40000-40100"],
            &["--tls-port", &tls_port],
        ]
        .concat(),
    );
    assert!(
        banner.contains(&format!("TURN (RFC 8656) on UDP and TCP {listen}")),
        "{banner}"
    );
    assert!(
        banner.contains("serving until SIGINT or SIGTERM"),
        "{banner}"
    );
    assert!(
        banner.contains(&format!("TURN over TLS on TCP 127.0.0.1:{}", port + 1)),
        "{banner}"
    );

    // STUN Binding on the TURN port.
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let req = Message::new(Class::Request, Method::Binding, TransactionId::new([3; 12])).emit();
    sock.send_to(&req, &listen).unwrap();
    let mut buf = [0u8; 1500];
    let (n, _) = sock.recv_from(&mut buf).unwrap();
    let resp = Message::parse(&buf[..n]).unwrap();
    assert_eq!(resp.class, Class::Success);
    assert_eq!(resp.mapped_address(), Some(sock.local_addr().unwrap()));

    // TURN over UDP, TCP and TLS: allocation works, the loopback peer is refused (403).
    let tls_listen = format!("127.0.0.1:{}", port + 1);
    for (tcp, tls) in [(false, false), (true, false), (true, true)] {
        let mut c = pinhole();
        let server = if tls { &tls_listen } else { &listen };
        c.args(["turn-client", server, "--user", "alice:secret"])
            .args(["--peer", "127.0.0.1:9", "--count", "1"]);
        if tcp {
            c.arg("--tcp");
        }
        if tls {
            c.arg("--tls");
        }
        let out = c.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
        let over = match (tcp, tls) {
            (_, true) => "over TLS",
            (true, _) => "over TCP",
            _ => "over UDP",
        };
        assert!(stdout.contains("allocated 127.0.0.1:40"), "{stdout}");
        assert!(stdout.contains(over), "{stdout}");
        assert!(stderr.contains("403 Forbidden"), "{stderr}");
    }
    // Wrong password: 401.
    let out = pinhole()
        .args([
            "turn-client",
            &listen,
            "--user",
            "alice:nope",
            "--peer",
            "192.0.2.1:9",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));

    stops_cleanly_on_sigterm(&mut g, lines);
}

#[test]
fn serve_refuses_bad_arguments_clearly() {
    let out = pinhole()
        .args(["serve", "turn", "--listen", "0.0.0.0:3478", "--user", "a:b"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an unspecified one"));
    let out = pinhole()
        .args(["serve", "turn", "--listen", "127.0.0.1:3478"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least one --user"));
    let out = pinhole()
        .args(["serve", "turn", "--user", "a:b", "--relay-ports", "9-3"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("--relay-ports"));
    let out = pinhole()
        .args(["serve", "turn", "--user", "nopassword"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("NAME:PASSWORD"));
}

/// `pinhole serve proxy` on loopback answers an OPTIONS for itself and stops cleanly on
/// SIGTERM (exit 0, "stopped"), as docs/reference.md says.
#[test]
fn serve_proxy_answers_and_stops_on_sigterm() {
    let port = 20_000 + ((std::process::id() + 7_000) % 20_000) as u16;
    let listen = format!("127.0.0.1:{port}");
    let (mut g, lines, banner) = serve(&["proxy", "--listen", &listen]);
    assert!(banner.contains(&listen), "{banner}");
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let me = sock.local_addr().unwrap();
    let options = format!(
        "OPTIONS sip:{listen} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-serve-1\r\n\
         Max-Forwards: 70\r\nFrom: <sip:test@{me}>;tag=1\r\nTo: <sip:{listen}>\r\n\
         Call-ID: serve-proxy-test\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    );
    sock.send_to(options.as_bytes(), &listen).unwrap();
    let mut buf = [0u8; 4096];
    let (n, from) = sock.recv_from(&mut buf).unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert_eq!(from.to_string(), listen);
    assert!(answer.starts_with("SIP/2.0 200"), "{answer}");
    assert!(answer.contains("Call-ID: serve-proxy-test"), "{answer}");

    stops_cleanly_on_sigterm(&mut g, lines);
}

/// coturn's `turnutils_uclient -T` (RFC 6062: two TCP allocations, Connect,
/// ConnectionAttempt, two ConnectionBinds, 20 messages each way) against `pinhole serve
/// turn` on loopback: 40 of 40, as docs/reference.md says. Skipped where coturn's tools are
/// missing, unless CI requires them (`cargo xtask test` installs them).
#[test]
fn uclient_tcp_relay_against_serve_turn() {
    let have = Command::new("turnutils_uclient")
        .arg("-h")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !have {
        assert!(
            std::env::var_os("CI").is_none_or(|v| v != "true"),
            "turnutils_uclient missing"
        );
        eprintln!("skipped: turnutils_uclient (Debian coturn) is not installed");
        return;
    }
    let port = 20_000 + ((std::process::id() + 13_000) % 20_000) as u16;
    let listen = format!("127.0.0.1:{port}");
    let turn = ["turn", "--listen", &listen, "--user", "alice:secret"];
    let (mut g, lines, _) = serve(&[&turn[..], &["--relay-ports", "41000-41100"]].concat());
    let out = Command::new("timeout")
        .args(["30", "turnutils_uclient", "-T", "-n", "20", "-u", "alice"])
        .args(["-w", "secret", "-p", &port.to_string(), "127.0.0.1"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("tot_send_msgs=40, tot_recv_msgs=40"),
        "{}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stops_cleanly_on_sigterm(&mut g, lines);
}
