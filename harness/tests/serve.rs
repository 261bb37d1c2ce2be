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

/// `pinhole serve relay` on loopback, as Kamailio's rtpengine module drives it: an offer
/// and an answer over ng, RTP both ways through the relay, a sprayer from another loopback
/// address that is never latched nor reaches a party (strict latching), the session's
/// accounting record after `delete`, and a clean stop — with one thread and with two
/// shards behind the built-in dispatcher.
#[test]
fn serve_relay_relays_a_call_and_keeps_a_sprayer_out() {
    for (threads, ports) in [("1", "41000-41099"), ("2", "41100-41199")] {
        relay_call_on_loopback(threads, ports);
    }
}

fn relay_call_on_loopback(threads: &str, ports: &str) {
    use relay::control::ng::{CallRef, NgCommand, NgMessage, NgReply, OfferAnswer};
    use relay::control::ng::{decode, encode_request};
    use relay::sdp::Sdp;
    let ng_port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = std::env::temp_dir().join(format!("pinhole-relay-{}-{threads}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let acct = dir.join("acct.jsonl");
    let ng_addr = format!("127.0.0.1:{ng_port}");
    let (mut g, lines, banner) = serve(&[
        "relay",
        "--listen",
        "127.0.0.1",
        "--ports",
        ports,
        "--ng",
        &ng_addr,
        "--threads",
        threads,
        "--accounting",
        acct.to_str().unwrap(),
    ]);
    assert!(banner.contains("media relay on 127.0.0.1"), "{banner}");
    let control = UdpSocket::bind("127.0.0.1:0").unwrap();
    control
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut cookie = 0;
    let mut ask = |c: &NgCommand| -> NgReply {
        cookie += 1;
        let k = format!("t_{cookie}");
        control
            .send_to(&encode_request(k.as_bytes(), c, None), &ng_addr)
            .unwrap();
        let mut buf = vec![0u8; 65536];
        let n = control.recv(&mut buf).expect("an ng reply");
        let r = decode(&buf[..n], None).unwrap();
        assert_eq!(r.cookie, k.as_bytes());
        match r.message.unwrap() {
            NgMessage::Reply(reply) => reply,
            other => panic!("{other:?}"),
        }
    };
    let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").unwrap();
    let sprayer = UdpSocket::bind("127.0.0.2:0").unwrap();
    for s in [&a, &b, &sprayer] {
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
    }
    let sdp = |port: u16| {
        format!("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\n")
            .into_bytes()
    };
    let relay_port = |reply: &NgReply| -> u16 {
        let NgReply::Ok { sdp: Some(s), .. } = reply else {
            panic!("{reply:?}")
        };
        Sdp::parse(s).unwrap().media()[0].media_line().port
    };
    let call = OfferAnswer {
        call_id: format!("loop-{threads}"),
        from_tag: "a-tag".into(),
        sdp: sdp(a.local_addr().unwrap().port()),
        ..OfferAnswer::default()
    };
    let to_b = relay_port(&ask(&NgCommand::Offer(call.clone())));
    let to_a = relay_port(&ask(&NgCommand::Answer(OfferAnswer {
        to_tag: Some("b-tag".into()),
        sdp: sdp(b.local_addr().unwrap().port()),
        ..call.clone()
    })));
    let rtp = |seq: u8, marker: u8| {
        let mut p = vec![0x80, 0, 0, seq, 0, 0, 0, 160, marker, 0, 0, 1];
        p.extend([0xff; 160]);
        p
    };
    // The sprayer first, on both ports: nothing latches to it.
    for seq in 0..5 {
        sprayer
            .send_to(&rtp(seq, 0x66), ("127.0.0.1", to_a))
            .unwrap();
        sprayer
            .send_to(&rtp(seq, 0x66), ("127.0.0.1", to_b))
            .unwrap();
    }
    let mut got_a = 0;
    let mut got_b = 0;
    let mut buf = [0u8; 2048];
    for seq in 0..20 {
        a.send_to(&rtp(seq, 0xaa), ("127.0.0.1", to_a)).unwrap();
        b.send_to(&rtp(seq, 0xbb), ("127.0.0.1", to_b)).unwrap();
        if let Ok((n, from)) = b.recv_from(&mut buf) {
            assert_eq!(
                (buf[8], n, from.port()),
                (0xaa, 172, to_b),
                "B hears A only"
            );
            got_b += 1;
        }
        if let Ok((n, from)) = a.recv_from(&mut buf) {
            assert_eq!(
                (buf[8], n, from.port()),
                (0xbb, 172, to_a),
                "A hears B only"
            );
            got_a += 1;
        }
    }
    assert!(got_a >= 18 && got_b >= 18, "{got_a} {got_b}");
    assert!(
        sprayer.recv_from(&mut buf).is_err(),
        "nothing reaches the sprayer"
    );
    let del = NgCommand::Delete(CallRef {
        call_id: call.call_id.clone(),
        from_tag: Some("a-tag".into()),
        ..CallRef::default()
    });
    assert_eq!(ask(&del), NgReply::ok());
    stops_cleanly_on_sigterm(&mut g, lines);
    let record = std::fs::read_to_string(&acct).unwrap();
    assert!(
        record.contains(&format!("\"call_id\":\"loop-{threads}\"")),
        "{record}"
    );
    assert!(record.contains("\"reason\":\"deleted\""), "{record}");
    // The sprayer's 5 packets to each side's port, dropped and counted on that side.
    assert_eq!(record.matches("\"wrong_address\":5").count(), 2, "{record}");
    std::fs::remove_dir_all(&dir).unwrap();
}
