//! The `http-proxy` service: an authenticating HTTP CONNECT proxy (RFC 9110 §9.3.6) on a
//! host of any [`Net`] — the last-resort path out of networks whose firewall only lets
//! connections to a proxy through (`http-proxy-only`), used by TURN clients to reach a
//! TURN server over TCP.
//!
//! Each connection sends one `CONNECT ADDR:PORT HTTP/1.1` request (an IP literal; no name
//! resolution) with a header block of at most [`MAX_REQUEST`] bytes. With users
//! configured it must carry `Proxy-Authorization: Basic …` (RFC 9110 §11.7.2, RFC 7617)
//! for one of them, or it gets `407 Proxy Authentication Required` with
//! `Proxy-Authenticate: Basic realm="pinhole"` and is closed. Then the proxy connects to
//! the target (`502 Bad Gateway` when that fails) and answers
//! `200 Connection Established`; from then on it copies bytes both ways, at most
//! [`TUNNEL_BUFFER`] bytes queued per direction (it stops reading a side whose bytes cannot
//! be written on). Either side closing closes both.

use super::net::{Agent, Net, NetError, TcpPhase};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Longest request header block.
pub const MAX_REQUEST: usize = 8 * 1024;
/// Most bytes queued per tunnel direction.
pub const TUNNEL_BUFFER: usize = 256 * 1024;
/// Most connections at once; further ones are closed at once.
pub const MAX_CONNECTIONS: usize = 256;
/// How long a refused connection stays open for its answer to be read.
pub const LINGER: Duration = Duration::from_secs(2);

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Base64 (RFC 4648 §4, with padding), for Basic credentials.
pub fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `Basic` credentials for `user:password` (RFC 7617 §2).
pub fn basic_credentials(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64_encode(format!("{user}:{password}").as_bytes())
    )
}

/// A parsed CONNECT request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectRequest {
    /// The target.
    pub target: SocketAddr,
    /// The Proxy-Authorization value, if any.
    pub authorization: Option<String>,
}

/// Why a request is refused: the status line to answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestError {
    /// Not a request line we understand (400).
    BadRequest,
    /// Another method than CONNECT (405).
    NotConnect,
}

/// Parses a complete request header block (up to and including the blank line).
pub fn parse_connect(head: &str) -> Result<ConnectRequest, RequestError> {
    let mut lines = head.split("\r\n");
    let line = lines.next().ok_or(RequestError::BadRequest)?;
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(RequestError::BadRequest);
    };
    if !version.starts_with("HTTP/1.") {
        return Err(RequestError::BadRequest);
    }
    if method != "CONNECT" {
        return Err(RequestError::NotConnect);
    }
    let target: SocketAddr = target.parse().map_err(|_| RequestError::BadRequest)?;
    let mut authorization = None;
    for l in lines {
        if let Some((name, value)) = l.split_once(':')
            && name.trim().eq_ignore_ascii_case("proxy-authorization")
        {
            authorization = Some(value.trim().to_string());
        }
    }
    Ok(ConnectRequest {
        target,
        authorization,
    })
}

enum State<S> {
    /// Reading the request.
    Request(Vec<u8>),
    /// Connecting to the target.
    Connecting(S),
    /// Copying bytes both ways: (target socket, client → target, target → client).
    Tunnel(S, Vec<u8>, Vec<u8>),
    /// Answered with an error: closing once the client has closed, or at the deadline
    /// (a TCP abort right away could discard the answer unsent).
    Closing(Option<Instant>),
}

struct Conn<S> {
    client: S,
    state: State<S>,
    /// Bytes for the client not yet written (status lines).
    reply: Vec<u8>,
}

/// What the proxy counted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Connections accepted.
    pub connections: u64,
    /// Tunnels opened (200 sent).
    pub tunnels: u64,
    /// 407 answers.
    pub auth_required: u64,
    /// 400, 405, 431 answers.
    pub bad_requests: u64,
    /// 502 answers.
    pub bad_gateway: u64,
    /// Connections refused at [`MAX_CONNECTIONS`].
    pub refused: u64,
}

/// The proxy.
pub struct HttpProxyService<N: Net> {
    host: usize,
    port: u16,
    users: Vec<String>,
    slot: Option<N::Socket>,
    conns: Vec<Conn<N::Socket>>,
    stats: ProxyStats,
}

impl<N: Net> HttpProxyService<N> {
    /// Listen on `port` of `host`; `users` (name, password) must authenticate (none: open).
    pub fn start(
        net: &mut N,
        host: usize,
        port: u16,
        users: &[(String, String)],
    ) -> Result<Self, NetError> {
        let slot = net.tcp_listen(host, port)?;
        Ok(HttpProxyService {
            host,
            port,
            users: users.iter().map(|(u, p)| basic_credentials(u, p)).collect(),
            slot: Some(slot),
            conns: Vec::new(),
            stats: ProxyStats::default(),
        })
    }

    /// The counters.
    pub fn stats(&self) -> &ProxyStats {
        &self.stats
    }

    fn accept(&mut self, net: &mut N) {
        let Some(s) = self.slot else { return };
        if net.tcp_state(s) == TcpPhase::Listening {
            return;
        }
        self.slot = net.tcp_listen(self.host, self.port).ok();
        if self.conns.len() >= MAX_CONNECTIONS {
            self.stats.refused += 1;
            net.close(s);
            return;
        }
        self.stats.connections += 1;
        self.conns.push(Conn {
            client: s,
            state: State::Request(Vec::new()),
            reply: Vec::new(),
        });
    }

    fn refuse(&mut self, status: &str, extra: &str) -> (State<N::Socket>, Vec<u8>) {
        let reply =
            format!("HTTP/1.1 {status}\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n");
        (State::Closing(None), reply.into_bytes())
    }

    /// The earliest linger deadline.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.conns
            .iter()
            .filter_map(|c| match c.state {
                State::Closing(d) => d,
                _ => None,
            })
            .min()
    }

    /// Advance one connection; `false` when it is finished and closed.
    fn step(&mut self, net: &mut N, mut c: Conn<N::Socket>) -> Option<Conn<N::Socket>> {
        let client_phase = net.tcp_state(c.client);
        let state = std::mem::replace(&mut c.state, State::Closing(None));
        c.state = match state {
            State::Request(mut buf) => {
                buf.extend(net.tcp_recv(c.client));
                match buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    None if buf.len() > MAX_REQUEST => {
                        self.stats.bad_requests += 1;
                        let (s, r) = self.refuse("431 Request Header Fields Too Large", "");
                        c.reply = r;
                        s
                    }
                    None => State::Request(buf),
                    Some(end) => {
                        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                        match parse_connect(&head) {
                            Err(e) => {
                                self.stats.bad_requests += 1;
                                let status = match e {
                                    RequestError::BadRequest => "400 Bad Request",
                                    RequestError::NotConnect => "405 Method Not Allowed",
                                };
                                let (s, r) = self.refuse(status, "");
                                c.reply = r;
                                s
                            }
                            Ok(req)
                                if !self.users.is_empty()
                                    && !req
                                        .authorization
                                        .as_ref()
                                        .is_some_and(|a| self.users.contains(a)) =>
                            {
                                self.stats.auth_required += 1;
                                let (s, r) = self.refuse(
                                    "407 Proxy Authentication Required",
                                    "Proxy-Authenticate: Basic realm=\"pinhole\"\r\n",
                                );
                                c.reply = r;
                                s
                            }
                            Ok(req) => match net.tcp_connect(self.host, 0, req.target) {
                                Ok((s, _)) => State::Connecting(s),
                                Err(_) => {
                                    self.stats.bad_gateway += 1;
                                    let (s, r) = self.refuse("502 Bad Gateway", "");
                                    c.reply = r;
                                    s
                                }
                            },
                        }
                    }
                }
            }
            State::Connecting(t) => match net.tcp_state(t) {
                TcpPhase::Established => {
                    self.stats.tunnels += 1;
                    c.reply = b"HTTP/1.1 200 Connection Established\r\n\r\n".to_vec();
                    State::Tunnel(t, Vec::new(), Vec::new())
                }
                TcpPhase::Closed | TcpPhase::Closing => {
                    net.close(t);
                    self.stats.bad_gateway += 1;
                    let (s, r) = self.refuse("502 Bad Gateway", "");
                    c.reply = r;
                    s
                }
                _ => State::Connecting(t),
            },
            State::Tunnel(t, mut up, mut down) => {
                if up.len() < TUNNEL_BUFFER {
                    up.extend(net.tcp_recv(c.client));
                }
                if down.len() < TUNNEL_BUFFER {
                    down.extend(net.tcp_recv(t));
                }
                if let Ok(n) = net.tcp_send(t, &up) {
                    up.drain(..n);
                }
                if c.reply.is_empty()
                    && let Ok(n) = net.tcp_send(c.client, &down)
                {
                    down.drain(..n);
                }
                let gone = |p| matches!(p, TcpPhase::Closed | TcpPhase::Closing);
                if gone(client_phase) || gone(net.tcp_state(t)) {
                    net.close(t);
                    net.close(c.client);
                    return None;
                }
                State::Tunnel(t, up, down)
            }
            State::Closing(d) => State::Closing(d),
        };
        let now = net.now();
        if let State::Closing(d @ None) = &mut c.state {
            *d = Some(now + LINGER);
        }
        if !c.reply.is_empty()
            && let Ok(n) = net.tcp_send(c.client, &c.reply)
        {
            c.reply.drain(..n);
        }
        let done = match c.state {
            State::Closing(d) => {
                d.is_some_and(|d| now >= d)
                    || (c.reply.is_empty()
                        && matches!(client_phase, TcpPhase::Closing | TcpPhase::Closed))
            }
            _ => false,
        };
        if done || matches!(client_phase, TcpPhase::Closed) {
            if let State::Connecting(t) | State::Tunnel(t, ..) = c.state {
                net.close(t);
            }
            net.close(c.client);
            return None;
        }
        Some(c)
    }
}

impl<N: Net> Agent<N> for HttpProxyService<N> {
    fn poll(&mut self, net: &mut N) {
        self.accept(net);
        for c in std::mem::take(&mut self.conns) {
            if let Some(c) = self.step(net, c) {
                self.conns.push(c);
            }
        }
    }
    fn poll_timeout(&self) -> Option<Instant> {
        HttpProxyService::poll_timeout(self)
    }
    /// A service is never waited for.
    fn is_done(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64_encode(i.as_bytes()), o);
        }
        // RFC 7617 §2's example.
        assert_eq!(
            basic_credentials("Aladdin", "open sesame"),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
    }

    #[test]
    fn parses_connect_requests() {
        let r = parse_connect(
            "CONNECT 203.0.113.5:3478 HTTP/1.1\r\nHost: 203.0.113.5:3478\r\nproxy-authorization:  Basic eDp5",
        )
        .unwrap();
        assert_eq!(r.target, "203.0.113.5:3478".parse().unwrap());
        assert_eq!(r.authorization.as_deref(), Some("Basic eDp5"));
        assert_eq!(
            parse_connect("GET http://x/ HTTP/1.1"),
            Err(RequestError::NotConnect)
        );
        assert_eq!(
            parse_connect("CONNECT example.org:443 HTTP/1.1"),
            Err(RequestError::BadRequest)
        );
        assert_eq!(parse_connect("CONNECT"), Err(RequestError::BadRequest));
        assert_eq!(
            parse_connect("CONNECT 1.2.3.4:5 SIP/2.0"),
            Err(RequestError::BadRequest)
        );
    }
}
