//! The relays `pinhole bench relay` measures, each a process it starts in the relay host,
//! holds by PID and stops (SIGTERM, then SIGKILL) when it is done with it — also when a
//! measurement fails or panics ([`Running`]'s `Drop`), and the sandbox takes whatever is
//! left with it. Sessions are set up the way each relay is used:
//!
//! - the do-nothing forwarder: port pairs and the parties' addresses on its stdin;
//! - rtpengine and pinhole's relay: an `offer` and an `answer` per call over the ng
//!   control protocol (bencode over UDP), the legs then send to the ports of the rewritten
//!   SDPs (RFC 3264 offer/answer: the offer's rewritten SDP goes to B, so B sends to its
//!   port; the answer's to A);
//! - coturn: per call, A's leg allocates (RFC 8656 §7) and binds a channel to B's leg
//!   (§12); A sends ChannelData to the server, B sends plain RTP to A's relayed address.
//!   Each packet crosses the relay once, as with the others.

use super::load::{Legs, Route};
use super::{NG_PORT, PORT_MAX, PORT_MIN, RELAY_ADDR, TURN_PORT};
use crate::cmd::bench::nat::find_program;
use crate::cmd::bench::proxy::{StderrTail, stop};
use crate::cmd::bench::{ip, now};
use anyhow::{Context, Result, anyhow, bail};
use emulator::fabric::kernel::sys::HostNs;
use relay::control::bencode::{self, Value};
use relay::turn::{ClientConfig, ClientEvent, Transport, TurnClient};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

/// How long a relay gets to answer its first control request.
const START_WAIT: Duration = Duration::from_secs(15);

/// A relay under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Target {
    /// pinhole's relay: `pinhole serve relay`, driven over ng.
    Pinhole,
    /// Debian's rtpengine in userspace (`--table=-1`), driven over ng.
    Rtpengine,
    /// coturn's `turnserver`, TURN channels.
    Coturn,
    /// the do-nothing epoll + recvmmsg→sendmmsg forwarder (`bench-relay-forwarder`).
    Forwarder,
}

/// Every target, in the order they are measured and printed.
pub(crate) const ALL: [Target; 4] = [
    Target::Forwarder,
    Target::Rtpengine,
    Target::Coturn,
    Target::Pinhole,
];

/// How sessions are made on a target.
enum Control {
    /// Port pairs on the forwarder's stdin.
    Pairs,
    /// rtpengine's ng protocol.
    Ng,
    /// TURN allocations and channels.
    Turn,
}

impl Target {
    /// The JSON key prefix and table name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Target::Pinhole => "pinhole",
            Target::Rtpengine => "rtpengine",
            Target::Coturn => "coturn",
            Target::Forwarder => "forwarder",
        }
    }

    fn control(self) -> Control {
        match self {
            Target::Forwarder => Control::Pairs,
            Target::Rtpengine | Target::Pinhole => Control::Ng,
            Target::Coturn => Control::Turn,
        }
    }

    /// The command that runs it in the relay host, or why it cannot run here.
    pub(crate) fn argv(self) -> Result<Vec<String>, String> {
        let relay = RELAY_ADDR;
        match self {
            Target::Forwarder => Ok(vec![
                pinhole_exe()?,
                "bench-relay-forwarder".into(),
                "--address".into(),
                relay.into(),
                "--first-port".into(),
                PORT_MIN.to_string(),
            ]),
            Target::Pinhole => {
                let exe = pinhole_exe()?;
                let help = Command::new(&exe)
                    .args(["serve", "relay", "--help"])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
                if !help.is_ok_and(|s| s.success()) {
                    return Err(
                        "not built: this pinhole has no `serve relay` (the relay's ng server is not in this build)"
                            .into(),
                    );
                }
                Ok(vec![
                    exe,
                    "serve".into(),
                    "relay".into(),
                    "--listen".into(),
                    relay.into(),
                    "--ports".into(),
                    format!("{PORT_MIN}-{PORT_MAX}"),
                    "--ng".into(),
                    format!("{relay}:{NG_PORT}"),
                    // The bench sets up every session before its first step, so a call's
                    // media may start many seconds after its answer; strict latching's
                    // window (5 s by default: phones send within a second of the answer)
                    // would close first. Latching stays strict: from the signalled IP only.
                    "--latching-window".into(),
                    "1h".into(),
                    "--idle-timeout-before-media".into(),
                    "1h".into(),
                ])
            }
            Target::Rtpengine => {
                let exe = find_program("rtpengine")
                    .ok_or("not installed (Debian package rtpengine-daemon)")?;
                Ok(vec![
                    exe,
                    "--config-file=none".into(),
                    "--table=-1".into(),
                    format!("--interface={relay}"),
                    format!("--listen-ng={relay}:{NG_PORT}"),
                    format!("--port-min={PORT_MIN}"),
                    format!("--port-max={PORT_MAX}"),
                    "--foreground".into(),
                    "--log-stderr".into(),
                    "--log-level=4".into(),
                    "--pidfile=/tmp/rtpengine.pid".into(),
                ])
            }
            Target::Coturn => {
                let exe =
                    find_program("turnserver").ok_or("not installed (Debian package coturn)")?;
                Ok(vec![
                    exe,
                    "-n".into(), // no configuration file
                    "--no-cli".into(),
                    "--no-tls".into(),
                    "--no-dtls".into(),
                    "--no-auth".into(),
                    format!("--listening-ip={relay}"),
                    format!("--relay-ip={relay}"),
                    format!("--listening-port={TURN_PORT}"),
                    format!("--min-port={PORT_MIN}"),
                    format!("--max-port={PORT_MAX}"),
                    "--log-file=stdout".into(),
                    "--simple-log".into(),
                    "--pidfile=/tmp/turnserver.pid".into(),
                ])
            }
        }
    }
}

fn pinhole_exe() -> Result<String, String> {
    std::env::current_exe()
        .map(|p| p.to_string_lossy().into_owned())
        .map_err(|e| format!("cannot find the pinhole binary: {e}"))
}

/// `VmRSS` of `pid` in KiB.
pub(crate) fn rss_kib(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// A target running with its sessions.
pub(crate) struct Running {
    /// Which one.
    pub target: Target,
    /// The command line.
    pub command: String,
    child: Child,
    log: StderrTail,
    /// Kept open: the forwarder stops when it closes.
    _stdin: Option<ChildStdin>,
    /// Where each call's legs send.
    pub routes: Vec<Route>,
    /// VmRSS before any session, KiB.
    pub rss_idle_kib: u64,
    /// VmRSS with every session, KiB.
    pub rss_sessions_kib: u64,
}

impl Running {
    /// The process's PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Memory per session: the RSS growth from no session to all, per call.
    pub fn bytes_per_session(&self) -> Option<u64> {
        let calls = self.routes.len() as u64;
        (calls > 0).then(|| self.rss_sessions_kib.saturating_sub(self.rss_idle_kib) * 1024 / calls)
    }

    /// Fail when the process has exited, with its last words.
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some(st) = self.child.try_wait()? {
            bail!("{} exited ({st}): {}", self.target.name(), self.log.text());
        }
        Ok(())
    }

    /// Start `target` in `relay` and set up one session per call of `legs`.
    pub fn start(target: Target, relay: &HostNs, gen_ns: &HostNs, legs: &Legs) -> Result<Running> {
        let argv = target.argv().map_err(|e| anyhow!("{e}"))?;
        let pairs = matches!(target.control(), Control::Pairs);
        let mut child = relay
            .spawn(
                &argv,
                &[],
                if pairs { Stdio::piped() } else { Stdio::null() },
                if pairs { Stdio::piped() } else { Stdio::null() },
                Stdio::piped(),
            )
            .map_err(|e| anyhow!("{e}"))?;
        let log = StderrTail::default();
        log.drain(&mut child);
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        let mut r = Running {
            target,
            command: argv.join(" "),
            child,
            log,
            _stdin: None,
            routes: Vec::new(),
            rss_idle_kib: 0,
            rss_sessions_kib: 0,
        };
        match target.control() {
            Control::Pairs => {
                let (Some(stdin), Some(stdout)) = (stdin, stdout) else {
                    bail!("the forwarder's stdin/stdout are not piped");
                };
                r.forwarder_pairs(stdin, stdout, legs)?;
            }
            Control::Ng => r.ng_sessions(gen_ns, legs)?,
            Control::Turn => r.turn_sessions(legs)?,
        }
        r.rss_sessions_kib = rss_kib(r.pid()).unwrap_or(0);
        r.check_alive()?;
        Ok(r)
    }

    fn forwarder_pairs(
        &mut self,
        mut stdin: ChildStdin,
        stdout: ChildStdout,
        legs: &Legs,
    ) -> Result<()> {
        let mut out = BufReader::new(stdout);
        let mut line = String::new();
        out.read_line(&mut line)?;
        if line.trim() != "started" {
            bail!("the forwarder did not start: {line:?} {}", self.log.text());
        }
        self.rss_idle_kib = rss_kib(self.pid()).unwrap_or(0);
        let mut text = String::new();
        for i in 0..legs.calls() {
            text.push_str(&format!("{} {}\n", legs.a_addr(i), legs.b_addr(i)));
            let a_port = PORT_MIN + 2 * i as u16;
            self.routes.push(Route {
                a_to: SocketAddr::new(ip(RELAY_ADDR), a_port),
                b_to: SocketAddr::new(ip(RELAY_ADDR), a_port + 1),
                a_channel: None,
            });
        }
        text.push_str("end\n");
        stdin.write_all(text.as_bytes())?;
        stdin.flush()?;
        line.clear();
        out.read_line(&mut line)?;
        if line.trim() != "ready" {
            bail!(
                "the forwarder did not get ready: {line:?} {}",
                self.log.text()
            );
        }
        self._stdin = Some(stdin);
        Ok(())
    }

    fn ng_sessions(&mut self, gen_ns: &HostNs, legs: &Legs) -> Result<()> {
        let mut ng = NgClient::open(gen_ns)?;
        let deadline = now() + START_WAIT;
        loop {
            self.check_alive()?;
            match ng.request(
                &dict(&[("command", Value::text("ping"))]),
                Duration::from_millis(300),
            ) {
                Ok(v) if v.get("result").and_then(Value::as_str) == Some("pong") => break,
                Ok(v) => bail!("ping answered {v:?}"),
                Err(_) if now() < deadline => {}
                Err(e) => bail!("no pong within {START_WAIT:?}: {e:#}: {}", self.log.text()),
            }
        }
        self.rss_idle_kib = rss_kib(self.pid()).unwrap_or(0);
        for i in 0..legs.calls() {
            let call_id = format!("pinhole-bench-{i}");
            let (from_tag, to_tag) = (format!("a{i}"), format!("b{i}"));
            let offer = ng.request(
                &dict(&[
                    ("command", Value::text("offer")),
                    ("call-id", Value::text(&call_id)),
                    ("from-tag", Value::text(&from_tag)),
                    ("sdp", Value::text(&sdp(legs.a_addr(i), i))),
                ]),
                Duration::from_secs(2),
            )?;
            let b_to = media_address(&offer).with_context(|| format!("offer of call {i}"))?;
            let answer = ng.request(
                &dict(&[
                    ("command", Value::text("answer")),
                    ("call-id", Value::text(&call_id)),
                    ("from-tag", Value::text(&from_tag)),
                    ("to-tag", Value::text(&to_tag)),
                    ("sdp", Value::text(&sdp(legs.b_addr(i), i))),
                ]),
                Duration::from_secs(2),
            )?;
            let a_to = media_address(&answer).with_context(|| format!("answer of call {i}"))?;
            self.routes.push(Route {
                a_to,
                b_to,
                a_channel: None,
            });
        }
        Ok(())
    }

    fn turn_sessions(&mut self, legs: &Legs) -> Result<()> {
        let server = SocketAddr::new(ip(RELAY_ADDR), TURN_PORT);
        let mut first = true;
        for i in 0..legs.calls() {
            let sock = &legs.a[i];
            sock.set_nonblocking(false)?;
            sock.set_read_timeout(Some(Duration::from_millis(20)))?;
            let mut client = TurnClient::new(ClientConfig {
                server,
                username: String::new(),
                password: String::new(),
                seed: i as u64 + 1,
                transport: Transport::Udp,
            });
            let wait = if first {
                START_WAIT
            } else {
                Duration::from_secs(5)
            };
            client.allocate(now(), None, Vec::new());
            let relayed = match self.turn_exchange(sock, &mut client, wait)? {
                ClientEvent::Allocated { relayed, .. } => relayed,
                other => bail!("allocate of call {i}: {other:?}"),
            };
            if first {
                // The idle figure is taken once the server answers (it is up).
                self.rss_idle_kib = rss_kib(self.pid()).unwrap_or(0);
                first = false;
            }
            let channel = relay::turn::channel::MIN_CHANNEL;
            client.channel_bind(now(), channel, legs.b_addr(i));
            match self.turn_exchange(sock, &mut client, Duration::from_secs(5))? {
                ClientEvent::ChannelBound { .. } => {}
                other => bail!("channel bind of call {i}: {other:?}"),
            }
            sock.set_nonblocking(true)?;
            self.routes.push(Route {
                a_to: server,
                b_to: relayed,
                a_channel: Some(channel),
            });
        }
        Ok(())
    }

    /// Drive one TURN transaction until its event.
    fn turn_exchange(
        &mut self,
        sock: &UdpSocket,
        client: &mut TurnClient,
        wait: Duration,
    ) -> Result<ClientEvent> {
        let deadline = now() + wait;
        let mut buf = [0u8; 2048];
        loop {
            while let Some(t) = client.poll_transmit() {
                let _ = sock.send_to(&t.data, t.to);
            }
            if let Some(ev) = client.poll_event() {
                return Ok(ev);
            }
            if now() >= deadline {
                self.check_alive()?;
                bail!("no TURN answer within {wait:?}: {}", self.log.text());
            }
            match sock.recv_from(&mut buf) {
                Ok((n, from)) => client.handle_input(now(), from, &buf[..n]),
                Err(_) => client.handle_timeout(now()),
            }
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        stop(&mut self.child, Duration::from_secs(3));
    }
}

/// A bencode dictionary from pairs.
fn dict(pairs: &[(&str, Value)]) -> Value {
    Value::Dict(
        pairs
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.clone()))
            .collect::<BTreeMap<_, _>>(),
    )
}

/// A G.711 audio offer or answer (RFC 4566 / RFC 3264) for a leg at `at`.
fn sdp(at: SocketAddr, call: usize) -> String {
    let a = at.ip();
    format!(
        "v=0\r\no=- {call} 1 IN IP4 {a}\r\ns=pinhole bench\r\nc=IN IP4 {a}\r\nt=0 0\r\n\
         m=audio {} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\na=sendrecv\r\n",
        at.port()
    )
}

/// The media address of a rewritten SDP in an ng reply (`c=` and the first `m=audio`).
fn media_address(reply: &Value) -> Result<SocketAddr> {
    if reply.get("result").and_then(Value::as_str) != Some("ok") {
        bail!(
            "the relay said {:?}: {:?}",
            reply.get("result").and_then(Value::as_str),
            reply.get("error-reason").and_then(Value::as_str)
        );
    }
    let sdp = reply
        .get("sdp")
        .and_then(Value::as_str)
        .context("the reply has no sdp")?;
    let mut addr: Option<IpAddr> = None;
    let mut port: Option<u16> = None;
    for line in sdp.lines() {
        let line = line.trim_end();
        if let Some(c) = line.strip_prefix("c=IN IP4 ") {
            addr = c.split_whitespace().next().and_then(|a| a.parse().ok());
        } else if let Some(m) = line.strip_prefix("m=audio ")
            && port.is_none()
        {
            port = m.split_whitespace().next().and_then(|p| p.parse().ok());
        }
    }
    match (addr, port) {
        (Some(a), Some(p)) => Ok(SocketAddr::new(a, p)),
        _ => bail!("no c=/m=audio in the rewritten SDP: {sdp:?}"),
    }
}

/// A minimal ng client: one request at a time, a fresh cookie each, resent on silence.
struct NgClient {
    sock: UdpSocket,
    to: SocketAddr,
    cookie: u64,
}

impl NgClient {
    fn open(gen_ns: &HostNs) -> Result<NgClient> {
        let sock = {
            let _in = gen_ns.enter_net().map_err(|e| anyhow!("{e}"))?;
            UdpSocket::bind(SocketAddr::new(ip(super::GEN_ADDR), 0))?
        };
        Ok(NgClient {
            sock,
            to: SocketAddr::new(ip(RELAY_ADDR), NG_PORT),
            cookie: 0,
        })
    }

    /// Send `msg`, wait up to `wait` (resending every 500 ms) for the reply to its cookie.
    fn request(&mut self, msg: &Value, wait: Duration) -> Result<Value> {
        self.cookie += 1;
        let cookie = format!("pb{}", self.cookie);
        let datagram = bencode::emit_ng(cookie.as_bytes(), msg);
        let deadline = now() + wait;
        let mut buf = vec![0u8; 65536];
        loop {
            self.sock.send_to(&datagram, self.to)?;
            let resend = (now() + Duration::from_millis(500)).min(deadline);
            loop {
                let left = resend.saturating_duration_since(now());
                if left.is_zero() {
                    break;
                }
                self.sock.set_read_timeout(Some(left))?;
                let Ok((n, _)) = self.sock.recv_from(&mut buf) else {
                    break;
                };
                if let Ok((c, v)) = bencode::parse_ng(&buf[..n])
                    && c == cookie.as_bytes()
                {
                    return Ok(v);
                }
            }
            if now() >= deadline {
                bail!("no ng reply within {wait:?}");
            }
        }
    }
}
