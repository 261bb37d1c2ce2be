//! `pinhole serve relay`: the media relay on this machine's sockets — the same core and ng
//! server the `media-relay` scenario service runs ([`relay::control::NgServer`] over
//! [`relay::media::MediaRelay`]), driven for throughput.
//!
//! The driver: one thread, mio (epoll, edge-triggered) readiness on the ng socket and on
//! one UDP socket per relay port the core asks for ([`relay::media::Command::BindPort`]).
//! Readable media sockets are served round-robin, up to [`BUDGET`] datagrams per socket
//! per turn with one `recvmmsg(2)` (with their sources); each datagram takes the core's
//! zero-copy path ([`relay::media::MediaRelay::handle_packet`]: no allocation, no lock), and
//! runs of datagrams with the same verdict leave with one `sendmmsg(2)` from the socket
//! the verdict names. Control and timers (idle timeouts, `media-ended` notices) share the
//! loop; the wait's deadline is the core's next timeout.
//!
//! Under overload each socket's short receive buffer ([`RECV_BUFFER`]) overflows on its own — the kernel drops the excess per socket, so per stream — and
//! every ready socket gets its turn each round: no stream can starve another, and a
//! stream delivers again as soon as the load falls.
//!
//! Not built: sharding sessions over several threads or cores (one thread serves every
//! session), io_uring batching across sockets, GSO/GRO (a relayed datagram goes to one
//! peer; a batch per socket is the unit).

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
/// process is stopped.
pub fn serve_relay(o: &RelayServeOptions) -> Result<u8> {
    let _ = sys::raise_open_files_limit();
    let mut rc = RelayConfig::new(vec![o.listen], o.ports.0..=o.ports.1);
    rc.advertised = o.advertised;
    rc.latching = o.latching;
    rc.latching_window = o.latching_window;
    rc.idle_timeout = o.idle_timeout;
    rc.idle_timeout_before_media = o.idle_timeout_before_media;
    rc.streams_max = o.streams_max;
    rc.asymmetric_clients.clone_from(&o.asymmetric_clients);
    #[allow(clippy::disallowed_methods)] // the driver's clock seeds the relay's port choice
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
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
    let span = usize::from(o.ports.1 - o.ports.0) + 1;
    let mut ports: Vec<Option<Port>> = (0..span).map(|_| None).collect();
    eprintln!(
        "pinhole relay: media on {}:{}-{}, ng on {}{}",
        o.listen,
        o.ports.0,
        o.ports.1,
        o.ng,
        if o.secret.is_some() { " (secret)" } else { "" }
    );

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
        if o.duration.is_some_and(|d| now >= started + d) {
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
                writeln!(f, "{}", record.to_json_line()).context("accounting file")?;
            }
        }
        while server.poll_event().is_some() {}
        if server.relay().is_drained() {
            eprintln!("pinhole relay: drained, exiting");
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
