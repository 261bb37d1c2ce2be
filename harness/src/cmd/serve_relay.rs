//! `pinhole serve relay`: the media relay on this machine's sockets — the same core and ng
//! server the `media-relay` scenario service runs ([`relay::control::NgServer`] over
//! [`relay::media::MediaRelay`]), driven for throughput.
//!
//! The driver: one thread, mio (epoll, edge-triggered) readiness on the ng socket and on
//! one UDP socket per relay port the core asks for ([`relay::media::Command::BindPort`]).
//! Readable media sockets are served round-robin, up to `BUDGET` (16) datagrams per socket
//! per turn with one `recvmmsg(2)` (with their sources); each datagram takes the core's
//! zero-copy path ([`relay::media::MediaRelay::handle_packet`]: no allocation, no lock), and
//! runs of datagrams with the same verdict leave with one `sendmmsg(2)` from the socket
//! the verdict names. Control and timers (idle timeouts, `media-ended` notices) share the
//! loop; the wait's deadline is the core's next timeout.
//!
//! Under overload each socket's short receive buffer (`RECV_BUFFER`, 8 KiB) overflows on
//! its own — the kernel drops the excess per socket, so per stream — and every ready socket
//! gets its turn each round: no stream can starve another, and a stream delivers again as
//! soon as the load falls.
//!
//! With `--threads N` the sessions are sharded: N such loops on threads of their own, each
//! with its slice of the port range and its own ng port (the ng port + 1 + i), and a
//! [`relay::control::Dispatcher`] on the ng address that places each new call on a shard
//! and sends the call's later commands to it (and `drain` to every shard) — the same
//! dispatcher that spreads calls over relay hosts. Control goes through one more hop;
//! media never leaves its shard's thread.
//!
//! Not built: io_uring batching across sockets, GSO/GRO (a relayed datagram goes to one
//! peer, and a stream sends one packet per 20 ms: there is nothing to coalesce; a batch per
//! socket is the unit).

use anyhow::{Context, Result, bail};
use emulator::fabric::kernel::sys;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use relay::control::{NgServer, ServerConfig};
use relay::media::{Command, Input, Latching, MediaEvent, MediaRelay, RelayConfig, Verdict};
use std::io::Write;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::{AsFd, AsRawFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Longest datagram relayed whole (RTP over UDP stays below the path MTU).
const SLOT: usize = 2048;

/// The ng socket's token; media sockets are `1 + port - first port`.
const NG: Token = Token(0);

/// The signal pipe's token (SIGINT/SIGTERM wake every loop).
const SIGNAL: Token = Token(usize::MAX);

/// What stops the loops: the flag SIGINT/SIGTERM set, and the pipe that wakes them.
#[derive(Clone)]
struct Stop {
    flag: std::sync::Arc<std::sync::atomic::AtomicBool>,
    pipe: std::os::fd::RawFd,
}

impl Stop {
    fn requested(&self) -> bool {
        self.flag.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn register(&self, poll: &Poll) -> Result<()> {
        poll.registry()
            .register(&mut SourceFd(&self.pipe), SIGNAL, Interest::READABLE)
            .context("wait on the signal pipe")
    }
}

/// Options of `pinhole serve relay`.
#[derive(Clone, Debug)]
pub struct RelayServeOptions {
    /// The address media ports are bound on.
    pub listen: IpAddr,
    /// The media port range.
    pub ports: (u16, u16),
    /// The ng control address.
    pub ng: SocketAddr,
    /// The shared secret of the control channel.
    pub secret: Option<String>,
    /// Latching mode.
    pub latching: Latching,
    /// Latching window after signalling.
    pub latching_window: Duration,
    /// Idle timeout after media.
    pub idle_timeout: Duration,
    /// Idle timeout before media.
    pub idle_timeout_before_media: Duration,
    /// Address written into SDP (relay behind 1:1 NAT).
    pub advertised: Option<IpAddr>,
    /// Streams per session at most.
    pub streams_max: usize,
    /// User-Agent patterns of asymmetric clients.
    pub asymmetric_clients: Vec<String>,
    /// Append accounting records (JSON lines) to this file.
    pub accounting: Option<PathBuf>,
    /// Exit after this long (a bounded run); `None`: until stopped or drained.
    pub duration: Option<Duration>,
    /// Shards: sessions spread over this many threads, each with its slice of the port
    /// range and its own ng port (ng port + 1 + i), behind a dispatcher on the ng address.
    pub threads: usize,
}

/// The receive buffer of a media socket: room for a burst of a few packets of one stream
/// (the kernel doubles the value and charges about 1 KiB per small datagram), not more. A
/// packet queued longer than a phone's jitter buffer waits is useless, and a short queue
/// per stream is what makes an overload drop its excess per stream and lets every stream
/// deliver in time again as soon as the load falls (a long one would take seconds to
/// work off).
const RECV_BUFFER: usize = 8 * 1024;

/// Datagrams taken from one socket per turn (see the round-robin in [`serve_relay`]).
const BUDGET: usize = 16;

/// A bound media port.
struct Port {
    socket: UdpSocket,
    /// In the ready queue.
    queued: bool,
}

/// Run the relay until it is drained (after an ng `drain`), `duration` passes, or the
/// process is stopped: one thread, or with `threads` > 1 that many shards behind a
/// dispatcher on the ng address.
pub fn serve_relay(o: &RelayServeOptions) -> Result<u8> {
    check_ng_outside_ports(o)?;
    let _ = sys::raise_open_files_limit();
    #[allow(clippy::disallowed_methods)] // the driver's clock seeds the relay's port choice
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let (flag, pipe) = super::serve::signal_pipe()?;
    let stop = Stop {
        flag,
        pipe: pipe.as_raw_fd(),
    };
    println!(
        "pinhole: media relay on {}:{}-{}, ng on {}{}{}",
        o.listen,
        o.ports.0,
        o.ports.1,
        o.ng,
        if o.secret.is_some() { " (secret)" } else { "" },
        if o.threads > 1 {
            format!(", {} shards", o.threads)
        } else {
            String::new()
        }
    );
    let code = if o.threads <= 1 {
        let whole = RelayServeOptions {
            threads: 0,
            ..o.clone()
        };
        serve_shard(&whole, seed, &stop)?
    } else {
        serve_sharded(o, seed, &stop)?
    };
    drop(pipe);
    println!("pinhole: stopped");
    Ok(code)
}

/// The ng port (and the shards' ng ports) must not be a media port: the relay would try
/// to bind it for a session and fail.
fn check_ng_outside_ports(o: &RelayServeOptions) -> Result<()> {
    let same_address =
        o.ng.ip() == o.listen || o.ng.ip().is_unspecified() || o.listen.is_unspecified();
    let last_ng = usize::from(o.ng.port()) + if o.threads > 1 { o.threads } else { 0 };
    let inside = |p: usize| (usize::from(o.ports.0)..=usize::from(o.ports.1)).contains(&p);
    if same_address && (usize::from(o.ng.port())..=last_ng).any(inside) {
        bail!(
            "--ng {}: its port{} inside --ports {}-{} on the same address (the relay binds \
             media ports there); pick an ng port outside the range",
            o.ng,
            if o.threads > 1 {
                format!(" or a shard's (up to {last_ng}) is")
            } else {
                " is".to_string()
            },
            o.ports.0,
            o.ports.1
        );
    }
    Ok(())
}

/// The shards of `threads` > 1: shard `i` has the `i`-th slice of the port range (whole
/// RTP/RTCP pairs) and its own ng port, `ng` port + 1 + `i` on the ng address.
fn shards(o: &RelayServeOptions) -> Result<Vec<RelayServeOptions>> {
    let n = o.threads;
    let first = o.ports.0 + (o.ports.0 & 1); // RTP ports are even
    let pairs = (usize::from(o.ports.1) + 1).saturating_sub(usize::from(first)) / 2;
    if pairs < n {
        bail!(
            "--threads {n}: the port range {}-{} holds only {pairs} RTP/RTCP pairs",
            o.ports.0,
            o.ports.1
        );
    }
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let lo = usize::from(first) + 2 * (pairs * i / n);
        let hi = usize::from(first) + 2 * (pairs * (i + 1) / n) - 1;
        let ng_port = u16::try_from(usize::from(o.ng.port()) + 1 + i)
            .ok()
            .context("--threads: the shards' ng ports run past 65535")?;
        let mut shard = o.clone();
        shard.ports = (lo as u16, hi as u16);
        shard.ng = SocketAddr::new(o.ng.ip(), ng_port);
        shard.threads = 1;
        out.push(shard);
    }
    Ok(out)
}

/// Shards on threads of their own, and a [`relay::control::Dispatcher`] on the ng address
/// in front of them: a call's commands go to the shard that took it (a random alive one),
/// `drain` to every shard. Returns when every shard has ended.
fn serve_sharded(o: &RelayServeOptions, seed: u64, stop: &Stop) -> Result<u8> {
    use relay::control::{Dispatcher, DispatcherConfig, NgCommand, NgMessage, NgReply, ng};
    let shards = shards(o)?;
    let relays: Vec<SocketAddr> = shards.iter().map(|s| s.ng).collect();
    let mut handles = Vec::new();
    for (i, shard) in shards.into_iter().enumerate() {
        let shard_seed = seed ^ ((i as u64 + 1) << 48);
        let shard_stop = stop.clone();
        handles.push(
            std::thread::Builder::new()
                .name(format!("relay-shard-{i}"))
                .spawn(move || serve_shard(&shard, shard_seed, &shard_stop))?,
        );
    }
    let ng_socket = UdpSocket::bind(o.ng).with_context(|| format!("ng socket {}", o.ng))?;
    ng_socket.set_nonblocking(true)?;
    let mut poll = Poll::new()?;
    poll.registry().register(
        &mut SourceFd(&ng_socket.as_raw_fd()),
        NG,
        Interest::READABLE,
    )?;
    stop.register(&poll)?;
    serving();
    let secret = o.secret.as_ref().map(|s| s.as_bytes().to_vec());
    let mut config = DispatcherConfig::new(o.ng, relays.clone());
    config.secret.clone_from(&secret);
    config.seed = seed;
    #[allow(clippy::disallowed_methods)] // the driver's clock
    let mut dispatcher = Dispatcher::new(config, Instant::now());
    let mut events = Events::with_capacity(64);
    let mut buf = vec![0u8; 65536];
    let mut drain_cookie = 0u64;
    loop {
        // Shards stop by themselves (a signal, --duration, drained).
        if handles.iter().all(std::thread::JoinHandle::is_finished) {
            break;
        }
        #[allow(clippy::disallowed_methods)] // the driver's clock
        let now = Instant::now();
        // At least once a second: shards that ended are noticed.
        let wait = dispatcher
            .poll_timeout()
            .map_or(Duration::from_secs(1), |t| t.saturating_duration_since(now))
            .min(Duration::from_secs(1));
        match poll.poll(&mut events, Some(wait)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        }
        #[allow(clippy::disallowed_methods)] // the driver's clock
        let now = Instant::now();
        loop {
            let (n, src) = match ng_socket.recv_from(&mut buf) {
                Ok(x) => x,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e).context("ng socket"),
            };
            let data = &buf[..n];
            // `drain` drains the whole relay: every shard.
            if let Ok(r) = ng::decode(data, secret.as_deref())
                && let Ok(NgMessage::Request(NgCommand::Drain)) = r.message
            {
                for shard in &relays {
                    drain_cookie += 1;
                    let cookie = format!("drain_{drain_cookie}");
                    let bytes =
                        ng::encode_request(cookie.as_bytes(), &NgCommand::Drain, secret.as_deref());
                    let _ = ng_socket.send_to(&bytes, shard);
                }
                let reply = ng::encode_reply(&r.cookie, &NgReply::ok(), secret.as_deref());
                let _ = ng_socket.send_to(&reply, src);
                continue;
            }
            dispatcher.handle_datagram(now, src, data);
        }
        if dispatcher.poll_timeout().is_some_and(|t| t <= now) {
            dispatcher.handle_timeout(now);
        }
        while let Some(t) = dispatcher.poll_transmit() {
            let _ = ng_socket.send_to(&t.data, t.to);
        }
        while dispatcher.poll_event().is_some() {}
    }
    for h in handles {
        match h.join() {
            Ok(r) => {
                r?;
            }
            Err(_) => bail!("a relay shard panicked"),
        }
    }
    Ok(crate::cli::EXIT_PASS)
}

/// Says that the ng address takes commands now (once it is bound).
fn serving() {
    println!("pinhole: serving until SIGINT or SIGTERM");
}

/// One relay (a shard, or the whole relay with one thread: `o.threads` 0) on `o.ng` and
/// `o.ports`.
fn serve_shard(o: &RelayServeOptions, seed: u64, stop: &Stop) -> Result<u8> {
    let mut rc = RelayConfig::new(vec![o.listen], o.ports.0..=o.ports.1);
    rc.advertised = o.advertised;
    rc.latching = o.latching;
    rc.latching_window = o.latching_window;
    rc.idle_timeout = o.idle_timeout;
    rc.idle_timeout_before_media = o.idle_timeout_before_media;
    rc.streams_max = o.streams_max;
    rc.asymmetric_clients.clone_from(&o.asymmetric_clients);
    rc.seed = seed;
    let core = MediaRelay::new(rc).context("relay configuration")?;
    let mut sc = ServerConfig::new(o.ng);
    sc.secret = o.secret.as_ref().map(|s| s.as_bytes().to_vec());
    sc.seed = seed ^ 0x6e67;
    let mut server = NgServer::new(sc, core);
    let mut accounting = match &o.accounting {
        Some(p) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .with_context(|| format!("accounting file {}", p.display()))?,
        ),
        None => None,
    };

    let ng = UdpSocket::bind(o.ng).with_context(|| format!("ng socket {}", o.ng))?;
    ng.set_nonblocking(true)?;
    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut SourceFd(&ng.as_raw_fd()), NG, Interest::READABLE)?;
    stop.register(&poll)?;
    if o.threads == 0 {
        serving(); // the whole relay, not a shard: its ng socket is bound now
    }
    let span = usize::from(o.ports.1 - o.ports.0) + 1;
    let mut ports: Vec<Option<Port>> = (0..span).map(|_| None).collect();

    #[allow(clippy::disallowed_methods)] // the driver's clock
    let started = Instant::now();
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; sys::MAX_BATCH * SLOT];
    let mut lens = [0usize; sys::MAX_BATCH];
    let mut from = [None; sys::MAX_BATCH];
    let mut verdicts: Vec<Option<(SocketAddr, SocketAddr)>> = vec![None; sys::MAX_BATCH];
    // Media sockets with datagrams (maybe) left, in turn order.
    let mut ready: std::collections::VecDeque<usize> = std::collections::VecDeque::new();
    let mut ng_buf = vec![0u8; 65536];
    loop {
        #[allow(clippy::disallowed_methods)] // the driver's clock
        let now = Instant::now();
        if stop.requested() || o.duration.is_some_and(|d| now >= started + d) {
            break;
        }
        let deadline = [server.poll_timeout(), o.duration.map(|d| started + d)]
            .into_iter()
            .flatten()
            .min();
        let wait = if ready.is_empty() {
            deadline.map(|d| d.saturating_duration_since(now))
        } else {
            Some(Duration::ZERO)
        };
        match poll.poll(&mut events, wait) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        }
        #[allow(clippy::disallowed_methods)] // the driver's clock
        let now = Instant::now();
        for ev in &events {
            if ev.token() == SIGNAL {
                continue; // the flag is checked at the top of the loop
            }
            if ev.token() == NG {
                loop {
                    match ng.recv_from(&mut ng_buf) {
                        Ok((n, src)) => server.handle_control(now, src, &ng_buf[..n]),
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                        Err(e) => return Err(e).context("ng socket"),
                    }
                }
                continue;
            }
            let i = ev.token().0 - 1;
            if let Some(Some(p)) = ports.get_mut(i)
                && !p.queued
            {
                p.queued = true;
                ready.push_back(i);
            }
        }
        // Serve the ready sockets round-robin, at most BUDGET datagrams each per turn: under
        // overload every stream gets its share and its own socket buffer drops its own
        // excess, so no stream starves another.
        let mut turns = ready.len();
        while turns > 0 {
            turns -= 1;
            let Some(i) = ready.pop_front() else { break };
            let Some(Some(port)) = ports.get(i) else {
                continue;
            };
            let local = SocketAddr::new(o.listen, o.ports.0 + i as u16);
            let n = sys::recv_batch_from(
                port.socket.as_fd(),
                &mut buf[..BUDGET * SLOT],
                SLOT,
                &mut lens,
                &mut from,
            )?;
            if n == BUDGET {
                // more may wait: its next turn comes after every other ready socket's
                ready.push_back(i);
            } else if let Some(Some(p)) = ports.get_mut(i) {
                p.queued = false;
            }
            let relay = server.relay_mut();
            for k in 0..n {
                verdicts[k] = match from[k] {
                    Some(src) => match relay.handle_packet(
                        now,
                        local,
                        src,
                        &buf[k * SLOT..k * SLOT + lens[k]],
                    ) {
                        Verdict::Forward { from, to } => Some((from, to)),
                        Verdict::Drop(_) => None,
                    },
                    None => None,
                };
            }
            // Runs of the same (socket, destination) leave in one sendmmsg.
            let mut k = 0;
            while k < n {
                let Some((out, to)) = verdicts[k] else {
                    k += 1;
                    continue;
                };
                let mut end = k + 1;
                while end < n && verdicts[end] == Some((out, to)) {
                    end += 1;
                }
                let slot = usize::from(out.port().wrapping_sub(o.ports.0));
                if let Some(Some(p)) = ports.get(slot) {
                    let mut packets: [&[u8]; sys::MAX_BATCH] = [&[]; sys::MAX_BATCH];
                    for (j, p) in packets.iter_mut().enumerate().take(end - k) {
                        let at = (k + j) * SLOT;
                        *p = &buf[at..at + lens[k + j]];
                    }
                    // A full send buffer drops the rest, as a congested link would.
                    let _ = sys::send_batch_to(p.socket.as_fd(), to, &packets[..end - k]);
                }
                k = end;
            }
        }
        // One round per loop: what is still ready gets its next turn after control and
        // timers were served (the wait above does not block then).
        if server.poll_timeout().is_some_and(|t| t <= now) {
            server.handle_timeout(now);
        } else {
            server.send_notices(now);
        }
        // Sockets the control side opened or closed.
        while let Some(c) = server.relay_mut().poll_command() {
            match c {
                Command::BindPort(addr) => {
                    let slot = usize::from(addr.port() - o.ports.0);
                    match bind(addr) {
                        Ok(socket) => {
                            poll.registry().register(
                                &mut SourceFd(&socket.as_raw_fd()),
                                Token(slot + 1),
                                Interest::READABLE,
                            )?;
                            ports[slot] = Some(Port {
                                socket,
                                queued: false,
                            });
                        }
                        Err(e) => {
                            eprintln!("pinhole relay: cannot bind {addr}: {e}");
                            server
                                .relay_mut()
                                .handle_input(now, Input::BindFailed(addr));
                        }
                    }
                }
                Command::ClosePort(addr) => {
                    let slot = usize::from(addr.port() - o.ports.0);
                    if let Some(p) = ports.get_mut(slot).and_then(Option::take) {
                        let _ = poll
                            .registry()
                            .deregister(&mut SourceFd(&p.socket.as_raw_fd()));
                    }
                }
            }
        }
        while let Some(t) = server.poll_transmit() {
            let _ = ng.send_to(&t.data, t.to);
        }
        while let Some(e) = server.relay_mut().poll_event() {
            if let (MediaEvent::SessionEnded { record, .. }, Some(f)) = (&e, accounting.as_mut()) {
                // One write per record: shards append to the same file (O_APPEND).
                let mut line = record.to_json_line();
                line.push('\n');
                f.write_all(line.as_bytes()).context("accounting file")?;
            }
        }
        while server.poll_event().is_some() {}
        if server.relay().is_drained() {
            println!("pinhole: {}: drained", o.ng);
            break;
        }
    }
    Ok(crate::cli::EXIT_PASS)
}

fn bind(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let domain = if addr.is_ipv4() {
        socket2::Domain::IPV4
    } else {
        socket2::Domain::IPV6
    };
    let s = socket2::Socket::new(domain, socket2::Type::DGRAM, None)?;
    // See RECV_BUFFER.
    let _ = s.set_recv_buffer_size(RECV_BUFFER);
    s.bind(&addr.into())?;
    s.set_nonblocking(true)?;
    Ok(UdpSocket::from(s))
}

/// Parses a `serve relay` latching keyword.
pub fn parse_latching(s: &str) -> Result<Latching> {
    match Latching::from_keyword(s) {
        Some(l) => Ok(l),
        None => bail!("`{s}`: one of {}", Latching::VALUES.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(ports: (u16, u16), threads: usize) -> RelayServeOptions {
        RelayServeOptions {
            listen: "127.0.0.1".parse().unwrap(),
            ports,
            ng: "127.0.0.1:2223".parse().unwrap(),
            secret: None,
            latching: Latching::Strict,
            latching_window: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(60),
            idle_timeout_before_media: Duration::from_secs(90),
            advertised: None,
            streams_max: 64,
            asymmetric_clients: Vec::new(),
            accounting: None,
            duration: None,
            threads,
        }
    }

    #[test]
    fn shards_split_the_range_into_whole_pairs_with_their_own_ng_ports() {
        let s = shards(&opts((40001, 40999), 3)).unwrap();
        let ranges: Vec<(u16, u16)> = s.iter().map(|x| x.ports).collect();
        // 40002..=40999 holds 499 pairs: 166, 166, 167
        assert_eq!(ranges, [(40002, 40333), (40334, 40665), (40666, 40999)]);
        for (i, x) in s.iter().enumerate() {
            assert_eq!(x.ng.port(), 2224 + i as u16);
            assert_eq!(x.threads, 1);
            assert_eq!(x.ports.0 % 2, 0);
            assert_eq!(x.ports.1 % 2, 1);
        }
        assert!(
            shards(&opts((40000, 40003), 3)).is_err(),
            "2 pairs for 3 shards"
        );
        let mut o = opts((40000, 40999), 2);
        o.ng = "127.0.0.1:65535".parse().unwrap();
        assert!(shards(&o).is_err(), "ng ports past 65535");
        // the ng port (or a shard's) inside the media ports is refused
        let mut o = opts((2000, 3000), 1);
        assert!(check_ng_outside_ports(&o).is_err());
        o.ports = (2224, 3000);
        assert!(check_ng_outside_ports(&o).is_ok());
        o.threads = 2;
        assert!(check_ng_outside_ports(&o).is_err(), "shard 0 takes 2224");
        o.ng = "127.0.0.2:2223".parse().unwrap();
        assert!(check_ng_outside_ports(&o).is_ok(), "another address");
    }
}
