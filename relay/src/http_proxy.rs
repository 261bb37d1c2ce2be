//! An authenticating HTTP CONNECT proxy (RFC 9110 §9.3.6, §11.7.1–11.7.2, §15.5.8) as a
//! sans-IO core: the enterprise proxy of SCENARIO-FORMAT.md's `http-proxy` service, the
//! only way out of an `http-proxy-only` firewall.
//!
//! One [`Tunnel`] per client connection. The driver feeds it what happens on the client
//! and upstream connections ([`Tunnel::handle_input`] with an [`Input`]); the tunnel parses the request head, checks
//! `Proxy-Authorization: Basic` (RFC 7617) against the configured users, and either answers
//! with an error (407 with `Proxy-Authenticate`, 400, 403, 405, 431) or asks the driver to
//! open a TCP connection to the target ([`TunnelOutput::Connect`]). Once the driver reports
//! the upstream connection ([`Input::UpstreamConnected`]) the tunnel answers
//! `200 Connection established` and from then on passes bytes both ways unchanged; bytes
//! the client sent right after the request head (an eager TLS ClientHello) are forwarded
//! first.
//!
//! Like squid's default `SSL_ports`, only some target ports may be tunnelled
//! ([`ProxyConfig::connect_ports`], 443 by default): that is what makes such a proxy a
//! last-resort path for TURN over TLS on 443 and nothing else.
//!
//! After a 407 the connection stays open for the retry with credentials (curl and
//! browsers retry on the same connection), at most [`MAX_AUTH_ATTEMPTS`] times. The
//! request head is bounded by [`ProxyConfig::max_head`] and must arrive within
//! [`ProxyConfig::head_timeout`].
//!
//! Drive contract (the crate's): after any `handle_*`, drain [`Tunnel::poll_output`] and
//! [`Tunnel::poll_event`] until `None`; call [`Tunnel::handle_timeout`] at
//! [`Tunnel::poll_timeout`].

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Requests with a wrong or missing password allowed on one connection before it closes.
pub const MAX_AUTH_ATTEMPTS: u32 = 3;

/// The proxy's configuration, shared by its tunnels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyConfig {
    /// `user → password`; empty means no authentication.
    pub users: Vec<(String, String)>,
    /// The `realm` of the `Proxy-Authenticate` challenge.
    pub realm: String,
    /// Target ports CONNECT may reach; `None`: any.
    pub connect_ports: Option<Vec<u16>>,
    /// Largest request head, in bytes (431 beyond).
    pub max_head: usize,
    /// Time a client has to send a complete request head.
    pub head_timeout: Duration,
}

impl ProxyConfig {
    /// Users as given, realm `pinhole`, CONNECT to port 443 only, 8 KiB heads, 10 s.
    pub fn new(users: Vec<(String, String)>) -> Self {
        ProxyConfig {
            users,
            realm: "pinhole".into(),
            connect_ports: Some(vec![443]),
            max_head: 8192,
            head_timeout: Duration::from_secs(10),
        }
    }
}

/// What the driver tells a [`Tunnel`] ([`Tunnel::handle_input`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input<'a> {
    /// Bytes from the client.
    ClientData(&'a [u8]),
    /// The client closed its side: nothing more will come from it.
    ClientClosed,
    /// The upstream connection asked for by [`TunnelOutput::Connect`] is established.
    UpstreamConnected,
    /// The upstream connection could not be made (refused, unreachable, timed out): 502
    /// with this reason (RFC 9110 §15.6.3).
    UpstreamFailed(&'a str),
    /// Bytes from the upstream connection.
    UpstreamData(&'a [u8]),
    /// The upstream closed: the client side is closed too (a CONNECT tunnel has no
    /// half-close semantics worth keeping here).
    UpstreamClosed,
}

/// What a tunnel asks its driver to do, in order: bytes for either side (the proxy's
/// [`crate::Transmit`]: the connection is the tunnel's, so no addresses) and the
/// commands to open the upstream connection and to close both (after the bytes queued
/// before it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TunnelOutput {
    /// Send these bytes to the client.
    ToClient(Vec<u8>),
    /// Open a TCP connection to `host:port` (a name or an address literal, without
    /// brackets) and report with [`Input::UpstreamConnected`] or
    /// [`Input::UpstreamFailed`].
    Connect {
        /// The target host as the client wrote it.
        host: String,
        /// The target port.
        port: u16,
    },
    /// Send these bytes to the upstream connection.
    ToUpstream(Vec<u8>),
    /// Close both connections once what was queued before has been sent.
    Close,
}

/// What happened, for reports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TunnelEvent {
    /// A request was refused with this status.
    Refused {
        /// The HTTP status sent.
        status: u16,
        /// Why.
        reason: String,
    },
    /// The tunnel to `host:port` is open, for `user` (None without authentication).
    Opened {
        /// The authenticated user.
        user: Option<String>,
        /// Target host.
        host: String,
        /// Target port.
        port: u16,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Reading the request head.
    Head,
    /// Waiting for the driver's upstream connection.
    Connecting,
    /// Passing bytes.
    Open,
    /// Done; nothing more is read.
    Closed,
}

/// One client connection of the proxy. See the module docs.
#[derive(Debug)]
pub struct Tunnel {
    state: State,
    buf: Vec<u8>,
    deadline: Instant,
    auth_failures: u32,
    out: VecDeque<TunnelOutput>,
    events: VecDeque<TunnelEvent>,
}

/// A parsed request head.
struct Head<'a> {
    method: &'a str,
    target: &'a str,
    version: &'a str,
    authorization: Option<&'a str>,
}

impl Tunnel {
    /// A tunnel for a client connection accepted at `now`.
    pub fn new(config: &ProxyConfig, now: Instant) -> Self {
        Tunnel {
            state: State::Head,
            buf: Vec::new(),
            deadline: now + config.head_timeout,
            auth_failures: 0,
            out: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// Whether the tunnel passes bytes now.
    pub fn is_open(&self) -> bool {
        self.state == State::Open
    }

    /// Whether the tunnel is finished (after [`TunnelOutput::Close`]).
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// The next thing to do.
    pub fn poll_output(&mut self) -> Option<TunnelOutput> {
        self.out.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<TunnelEvent> {
        self.events.pop_front()
    }

    /// When [`Tunnel::handle_timeout`] is due (only while reading the head).
    pub fn poll_timeout(&self) -> Option<Instant> {
        (self.state == State::Head).then_some(self.deadline)
    }

    /// Time passed: a client that has not sent a complete head by now gets 408.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state == State::Head && now >= self.deadline {
            self.refuse(
                408,
                "Request Timeout",
                "request head not complete in time",
                &[],
            );
        }
    }

    /// Something happened on the client or the upstream connection (see [`Input`]).
    /// `now` is the time of the input: the cores' one signature; the tunnel's only timer,
    /// the head deadline, runs in [`Tunnel::handle_timeout`].
    pub fn handle_input(&mut self, _now: Instant, config: &ProxyConfig, input: Input<'_>) {
        match input {
            Input::ClientData(data) => self.client_data(config, data),
            Input::ClientClosed => self.client_closed(),
            Input::UpstreamConnected => self.upstream_connected(),
            Input::UpstreamFailed(why) => self.upstream_failed(why),
            Input::UpstreamData(data) => self.upstream_data(data),
            Input::UpstreamClosed => self.upstream_closed(),
        }
    }

    fn client_data(&mut self, config: &ProxyConfig, data: &[u8]) {
        match self.state {
            State::Open => self.out.push_back(TunnelOutput::ToUpstream(data.to_vec())),
            // Early data: kept in `buf` and forwarded once the upstream is connected.
            State::Connecting => self.buf.extend_from_slice(data),
            State::Head => {
                self.buf.extend_from_slice(data);
                self.parse(config);
            }
            State::Closed => {}
        }
    }

    fn client_closed(&mut self) {
        if self.state != State::Closed {
            self.state = State::Closed;
            self.out.push_back(TunnelOutput::Close);
        }
    }

    fn upstream_connected(&mut self) {
        if self.state != State::Connecting {
            return;
        }
        self.state = State::Open;
        self.out.push_back(TunnelOutput::ToClient(
            b"HTTP/1.1 200 Connection established\r\n\r\n".to_vec(),
        ));
        if !self.buf.is_empty() {
            let early = std::mem::take(&mut self.buf);
            self.out.push_back(TunnelOutput::ToUpstream(early));
        }
    }

    fn upstream_failed(&mut self, why: &str) {
        if self.state == State::Connecting {
            self.refuse(502, "Bad Gateway", why, &[]);
        }
    }

    fn upstream_data(&mut self, data: &[u8]) {
        if self.state == State::Open {
            self.out.push_back(TunnelOutput::ToClient(data.to_vec()));
        }
    }

    fn upstream_closed(&mut self) {
        match self.state {
            State::Open => {
                self.state = State::Closed;
                self.out.push_back(TunnelOutput::Close);
            }
            State::Connecting => self.refuse(502, "Bad Gateway", "upstream closed", &[]),
            State::Head | State::Closed => {}
        }
    }

    // ===== internals =====

    fn parse(&mut self, config: &ProxyConfig) {
        let Some(end) = find(&self.buf, b"\r\n\r\n") else {
            if self.buf.len() > config.max_head {
                self.refuse(
                    431,
                    "Request Header Fields Too Large",
                    "request head too large",
                    &[],
                );
            }
            return;
        };
        if end + 4 > config.max_head {
            self.refuse(
                431,
                "Request Header Fields Too Large",
                "request head too large",
                &[],
            );
            return;
        }
        let head_bytes: Vec<u8> = self.buf.drain(..end + 4).collect();
        let Ok(text) = std::str::from_utf8(&head_bytes[..end]) else {
            self.refuse(400, "Bad Request", "request head is not UTF-8", &[]);
            return;
        };
        let Some(head) = parse_head(text) else {
            self.refuse(400, "Bad Request", "malformed request head", &[]);
            return;
        };
        if !head.version.starts_with("HTTP/1.") {
            self.refuse(
                505,
                "HTTP Version Not Supported",
                &format!("version {}", head.version),
                &[],
            );
            return;
        }
        if head.method != "CONNECT" {
            let why = format!("method {} (only CONNECT is proxied)", head.method);
            self.refuse(405, "Method Not Allowed", &why, &["Allow: CONNECT"]);
            return;
        }
        let Some((host, port)) = split_authority(head.target) else {
            self.refuse(
                400,
                "Bad Request",
                &format!("CONNECT target `{}` is not host:port", head.target),
                &[],
            );
            return;
        };
        let user = if config.users.is_empty() {
            None
        } else {
            match head.authorization.and_then(basic_credentials_of) {
                Some((u, p)) if config.users.iter().any(|(cu, cp)| *cu == u && *cp == p) => Some(u),
                given => {
                    self.auth_failures += 1;
                    let why = if given.is_some() {
                        "wrong user or password"
                    } else {
                        "no Basic Proxy-Authorization"
                    };
                    let challenge = format!("Proxy-Authenticate: Basic realm=\"{}\"", config.realm);
                    if self.auth_failures >= MAX_AUTH_ATTEMPTS {
                        self.refuse(407, "Proxy Authentication Required", why, &[&challenge]);
                    } else {
                        // Keep the connection for the retry (RFC 9110 §11.7.1).
                        self.respond(407, "Proxy Authentication Required", why, &[&challenge]);
                        // Whatever followed the head is the next request.
                        self.parse(config);
                    }
                    return;
                }
            }
        };
        if let Some(ports) = &config.connect_ports
            && !ports.contains(&port)
        {
            self.refuse(
                403,
                "Forbidden",
                &format!("CONNECT to port {port} is not allowed"),
                &[],
            );
            return;
        }
        self.state = State::Connecting;
        self.events.push_back(TunnelEvent::Opened {
            user,
            host: host.to_owned(),
            port,
        });
        self.out.push_back(TunnelOutput::Connect {
            host: host.to_owned(),
            port,
        });
    }

    /// An error response, keeping the connection.
    fn respond(&mut self, status: u16, phrase: &str, why: &str, headers: &[&str]) {
        let mut r = format!("HTTP/1.1 {status} {phrase}\r\n");
        for h in headers {
            r.push_str(h);
            r.push_str("\r\n");
        }
        let body = format!("{why}\n");
        r.push_str(&format!(
            "Content-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ));
        self.out.push_back(TunnelOutput::ToClient(r.into_bytes()));
        self.events.push_back(TunnelEvent::Refused {
            status,
            reason: why.to_owned(),
        });
    }

    /// An error response, then close.
    fn refuse(&mut self, status: u16, phrase: &str, why: &str, headers: &[&str]) {
        let mut h: Vec<&str> = headers.to_vec();
        h.push("Connection: close");
        self.respond(status, phrase, why, &h);
        self.state = State::Closed;
        self.buf.clear();
        self.out.push_back(TunnelOutput::Close);
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Request line and the one header the proxy needs; `None` when malformed (no request
/// line of three parts, a header line without a colon, or obsolete line folding, which
/// RFC 9112 §5.2 lets a proxy reject).
fn parse_head(text: &str) -> Option<Head<'_>> {
    let mut lines = text.split("\r\n");
    let mut parts = lines.next()?.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || method.is_empty() || target.is_empty() {
        return None;
    }
    let mut authorization = None;
    for line in lines {
        if line.starts_with([' ', '\t']) {
            return None;
        }
        let (name, value) = line.split_once(':')?;
        if name.eq_ignore_ascii_case("proxy-authorization") {
            authorization = Some(value.trim());
        }
    }
    Some(Head {
        method,
        target,
        version,
        authorization,
    })
}

/// `host:port` or `[v6]:port` (RFC 9110 §9.3.6 authority-form); the host without brackets.
fn split_authority(target: &str) -> Option<(&str, u16)> {
    let (host, port) = if let Some(rest) = target.strip_prefix('[') {
        let (h, p) = rest.split_once("]:")?;
        (h, p)
    } else {
        let (h, p) = target.rsplit_once(':')?;
        if h.contains(':') {
            return None;
        }
        (h, p)
    };
    let port: u16 = port.parse().ok().filter(|p| *p != 0)?;
    (!host.is_empty()).then_some((host, port))
}

/// `Basic base64(user:password)` (RFC 7617 §2) → (user, password).
fn basic_credentials_of(value: &str) -> Option<(String, String)> {
    let (scheme, token) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64_decode(token.trim())?;
    let text = String::from_utf8(decoded).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_owned(), p.to_owned()))
}

/// The `Proxy-Authorization` value for `user:password` with the Basic scheme (RFC 7617
/// §2): `Basic ` and the base64 of the pair, for clients of a proxy.
pub fn basic_credentials(user: &str, password: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let data = format!("{user}:{password}").into_bytes();
    let mut out = String::from("Basic ");
    for chunk in data.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Standard base64 with padding (RFC 4648 §4); `None` on any other character.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod test {
    use super::*;

    #[allow(clippy::disallowed_methods)] // tests: any instant will do
    fn t0() -> Instant {
        Instant::now()
    }

    fn config() -> ProxyConfig {
        ProxyConfig::new(vec![("alice".into(), "secret".into())])
    }

    fn drain(t: &mut Tunnel) -> Vec<TunnelOutput> {
        std::iter::from_fn(|| t.poll_output()).collect()
    }

    fn client_text(out: &[TunnelOutput]) -> String {
        out.iter()
            .filter_map(|o| match o {
                TunnelOutput::ToClient(b) => Some(String::from_utf8_lossy(b).into_owned()),
                _ => None,
            })
            .collect()
    }

    // base64("alice:secret") = YWxpY2U6c2VjcmV0
    const AUTH: &str = "Proxy-Authorization: Basic YWxpY2U6c2VjcmV0\r\n";

    #[test]
    fn base64_and_authority() {
        assert_eq!(base64_decode("YWxpY2U6c2VjcmV0").unwrap(), b"alice:secret");
        assert_eq!(base64_decode("YQ==").unwrap(), b"a");
        assert_eq!(base64_decode("Y*=="), None);
        assert_eq!(
            basic_credentials("alice", "secret"),
            "Basic YWxpY2U6c2VjcmV0"
        );
        for (u, p) in [("a", ""), ("ab", "c"), ("user", "pässwörd:x")] {
            let v = basic_credentials(u, p);
            assert_eq!(
                basic_credentials_of(&v),
                Some((u.to_owned(), p.to_owned())),
                "{v}"
            );
        }
        assert_eq!(split_authority("server:443"), Some(("server", 443)));
        assert_eq!(
            split_authority("[2001:db8::1]:443"),
            Some(("2001:db8::1", 443))
        );
        assert_eq!(split_authority("2001:db8::1:443"), None);
        assert_eq!(split_authority("server"), None);
        assert_eq!(split_authority("server:0"), None);
        assert_eq!(split_authority(":443"), None);
    }

    #[test]
    fn authorized_connect_with_early_data() {
        let c = config();
        let mut t = Tunnel::new(&c, t0());
        let req = format!("CONNECT server:443 HTTP/1.1\r\nHost: server:443\r\n{AUTH}\r\nHELLO");
        // Split in two reads, the second carrying the end of the head and early data.
        t.handle_input(t0(), &c, Input::ClientData(&req.as_bytes()[..20]));
        assert!(drain(&mut t).is_empty());
        t.handle_input(t0(), &c, Input::ClientData(&req.as_bytes()[20..]));
        assert_eq!(
            drain(&mut t),
            vec![TunnelOutput::Connect {
                host: "server".into(),
                port: 443
            }]
        );
        t.handle_input(t0(), &c, Input::ClientData(b" MORE"));
        t.handle_input(t0(), &c, Input::UpstreamConnected);
        assert!(t.is_open());
        assert_eq!(
            drain(&mut t),
            vec![
                TunnelOutput::ToClient(b"HTTP/1.1 200 Connection established\r\n\r\n".to_vec()),
                TunnelOutput::ToUpstream(b"HELLO MORE".to_vec())
            ]
        );
        t.handle_input(t0(), &c, Input::UpstreamData(b"pong"));
        t.handle_input(t0(), &c, Input::ClientData(b"ping"));
        assert_eq!(
            drain(&mut t),
            vec![
                TunnelOutput::ToClient(b"pong".to_vec()),
                TunnelOutput::ToUpstream(b"ping".to_vec())
            ]
        );
        assert_eq!(
            t.poll_event(),
            Some(TunnelEvent::Opened {
                user: Some("alice".into()),
                host: "server".into(),
                port: 443
            })
        );
        t.handle_input(t0(), &c, Input::UpstreamClosed);
        assert_eq!(drain(&mut t), vec![TunnelOutput::Close]);
        assert!(t.is_closed());
    }

    #[test]
    fn challenge_then_retry_on_the_same_connection() {
        let c = config();
        let mut t = Tunnel::new(&c, t0());
        t.handle_input(
            t0(),
            &c,
            Input::ClientData(b"CONNECT server:443 HTTP/1.1\r\nHost: server\r\n\r\n"),
        );
        let out = drain(&mut t);
        let text = client_text(&out);
        assert!(
            text.starts_with("HTTP/1.1 407 Proxy Authentication Required\r\n"),
            "{text}"
        );
        assert!(
            text.contains("Proxy-Authenticate: Basic realm=\"pinhole\"\r\n"),
            "{text}"
        );
        assert!(!out.contains(&TunnelOutput::Close));
        t.handle_input(
            t0(),
            &c,
            Input::ClientData(format!("CONNECT server:443 HTTP/1.1\r\n{AUTH}\r\n").as_bytes()),
        );
        assert!(matches!(drain(&mut t)[..], [TunnelOutput::Connect { .. }]));
    }

    #[test]
    fn wrong_password_three_times_closes() {
        let c = config();
        let mut t = Tunnel::new(&c, t0());
        // base64("alice:wrong") = YWxpY2U6d3Jvbmc=
        let bad =
            b"CONNECT server:443 HTTP/1.1\r\nProxy-Authorization: Basic YWxpY2U6d3Jvbmc=\r\n\r\n";
        for i in 0..MAX_AUTH_ATTEMPTS {
            t.handle_input(t0(), &c, Input::ClientData(bad));
            let out = drain(&mut t);
            assert!(client_text(&out).starts_with("HTTP/1.1 407"));
            assert_eq!(
                out.contains(&TunnelOutput::Close),
                i + 1 == MAX_AUTH_ATTEMPTS,
                "{i}"
            );
        }
        assert!(t.is_closed());
        t.handle_input(t0(), &c, Input::ClientData(bad));
        assert!(drain(&mut t).is_empty());
    }

    #[test]
    fn refusals() {
        let c = config();
        let cases: &[(&[u8], &str)] = &[
            (b"GET http://server/ HTTP/1.1\r\n\r\n", "HTTP/1.1 405 "),
            (b"CONNECT server:3478 HTTP/1.1\r\nProxy-Authorization: Basic YWxpY2U6c2VjcmV0\r\n\r\n", "HTTP/1.1 403 "),
            (b"CONNECT server HTTP/1.1\r\n\r\n", "HTTP/1.1 400 "),
            (b"CONNECT server:443 HTTP/2.0\r\n\r\n", "HTTP/1.1 505 "),
            (b"CONNECT server:443 HTTP/1.1\r\n folded\r\n\r\n", "HTTP/1.1 400 "),
            (b"CONNECT server:443\r\n\r\n", "HTTP/1.1 400 "),
            (b"\xff\xfe\r\n\r\n", "HTTP/1.1 400 "),
        ];
        for (req, want) in cases {
            let mut t = Tunnel::new(&c, t0());
            t.handle_input(t0(), &c, Input::ClientData(req));
            let out = drain(&mut t);
            assert!(
                client_text(&out).starts_with(want),
                "{:?}: {out:?}",
                String::from_utf8_lossy(req)
            );
            assert_eq!(out.last(), Some(&TunnelOutput::Close));
            assert!(matches!(t.poll_event(), Some(TunnelEvent::Refused { .. })));
        }
    }

    #[test]
    fn limits_timeout_and_upstream_failure() {
        let c = config();
        let start = t0();
        let mut t = Tunnel::new(&c, start);
        t.handle_input(t0(), &c, Input::ClientData(&vec![b'a'; c.max_head + 1]));
        assert!(client_text(&drain(&mut t)).starts_with("HTTP/1.1 431 "));

        let mut t = Tunnel::new(&c, start);
        t.handle_input(
            t0(),
            &c,
            Input::ClientData(b"CONNECT server:443 HTTP/1.1\r\n"),
        );
        assert_eq!(t.poll_timeout(), Some(start + c.head_timeout));
        t.handle_timeout(start + c.head_timeout);
        assert!(client_text(&drain(&mut t)).starts_with("HTTP/1.1 408 "));
        assert_eq!(t.poll_timeout(), None);

        let mut t = Tunnel::new(&c, start);
        t.handle_input(
            t0(),
            &c,
            Input::ClientData(format!("CONNECT 203.0.113.5:443 HTTP/1.1\r\n{AUTH}\r\n").as_bytes()),
        );
        drain(&mut t);
        t.handle_input(t0(), &c, Input::UpstreamFailed("connection refused"));
        let out = drain(&mut t);
        assert!(client_text(&out).starts_with("HTTP/1.1 502 "), "{out:?}");
        assert_eq!(out.last(), Some(&TunnelOutput::Close));
    }

    #[test]
    fn no_users_means_no_authentication_and_any_port_when_configured() {
        let mut c = ProxyConfig::new(vec![]);
        c.connect_ports = None;
        let mut t = Tunnel::new(&c, t0());
        t.handle_input(
            t0(),
            &c,
            Input::ClientData(b"CONNECT [2001:db8::5]:3478 HTTP/1.1\r\n\r\n"),
        );
        assert_eq!(
            drain(&mut t),
            vec![TunnelOutput::Connect {
                host: "2001:db8::5".into(),
                port: 3478
            }]
        );
    }

    proptest::proptest! {
        /// Any bytes, in any split, never panic, and every tunnel that closes says so last.
        #[test]
        fn arbitrary_client_bytes(chunks in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..300), 0..8)) {
            let c = config();
            let mut t = Tunnel::new(&c, t0());
            for ch in &chunks {
                t.handle_input(t0(), &c, Input::ClientData(ch));
                let out = drain(&mut t);
                if let Some(i) = out.iter().position(|o| *o == TunnelOutput::Close) {
                    proptest::prop_assert_eq!(i, out.len() - 1);
                }
            }
        }
    }
}
