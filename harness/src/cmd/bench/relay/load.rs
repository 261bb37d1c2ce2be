//! The load generator of `pinhole bench relay`: simulated G.711 calls (RFC 3551 §4.5.14
//! PCMU, 20 ms packets: a 12-byte RTP header, RFC 3550 §5.1, and 160 bytes of payload —
//! 172 bytes, 50 packets/s each way per call).
//!
//! Every call has two legs, A and B, each a UDP socket of its own in the generator host
//! (its port is the leg's media port in the SDP or its TURN client port). Stream `2i` goes
//! from call `i`'s A leg to B, stream `2i + 1` back; the SSRC is the stream id + 1, the
//! sequence number counts from 0, and the first 8 payload bytes carry the send time
//! (nanoseconds on this process's monotonic clock) for the one-way latency.
//!
//! Sending is paced like real phones: in every 20 ms round each stream sends exactly one
//! packet, at its own phase (stream `k` of `n` at `k/n` of the round), never a burst per
//! flow. The packets due at one moment — across all legs — leave in one `sendmmsg(2)` of
//! up to 64 from a raw IPv4 socket (`IPPROTO_RAW`), each datagram carrying its leg's
//! source port in its own UDP header: that is how one thread batches across sockets;
//! on the wire they are the datagrams the legs' own sockets would send (UDP checksum 0,
//! allowed for IPv4, RFC 768). The legs' sockets receive (epoll via mio, `recvmmsg(2)`).
//! Each load is bounded: a fixed number of rounds, so of packets.

use super::super::now;
use anyhow::{Context, Result, anyhow, bail};
use emulator::fabric::kernel::sys::{self, HostNs};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// One packet per stream per round (G.711 at 20 ms packetization, RFC 3551 §4.5.14).
pub(crate) const PERIOD: Duration = Duration::from_millis(20);
/// RTP packet length: 12-byte header + 160 bytes of PCMU.
pub(crate) const RTP_LEN: usize = 172;
/// Most packets one stream sends in one load (its sequence numbers must not wrap).
pub(crate) const MAX_ROUNDS: u32 = 60_000;
/// IPv4 + UDP header in front of each raw datagram.
const HEADERS: usize = 28;
/// ChannelData header (RFC 8656 §12.4) in front of RTP on TURN client legs.
const CHANNEL_HEADER: usize = 4;
/// Receive slot (room for ChannelData + RTP).
const SLOT: usize = 256;

/// The generator's legs: two UDP sockets per call.
pub(crate) struct Legs {
    /// A legs (the offerer's, or the TURN client's).
    pub a: Vec<UdpSocket>,
    /// B legs.
    pub b: Vec<UdpSocket>,
    a_addr: Vec<SocketAddr>,
    b_addr: Vec<SocketAddr>,
}

impl Legs {
    /// `calls` pairs of non-blocking sockets on `addr` (ephemeral ports) in `ns`.
    pub fn open(ns: &HostNs, addr: IpAddr, calls: usize) -> Result<Legs> {
        let _in = ns.enter_net().map_err(|e| anyhow!("{e}"))?;
        let mut legs = Legs {
            a: Vec::with_capacity(calls),
            b: Vec::with_capacity(calls),
            a_addr: Vec::with_capacity(calls),
            b_addr: Vec::with_capacity(calls),
        };
        for _ in 0..calls {
            for (socks, addrs) in [
                (&mut legs.a, &mut legs.a_addr),
                (&mut legs.b, &mut legs.b_addr),
            ] {
                let s = UdpSocket::bind(SocketAddr::new(addr, 0))
                    .context("bind a generator leg (too many open files? raise `ulimit -n`)")?;
                s.set_nonblocking(true)?;
                addrs.push(s.local_addr()?);
                socks.push(s);
            }
        }
        Ok(legs)
    }

    /// Call `i`'s A leg address.
    pub fn a_addr(&self, i: usize) -> SocketAddr {
        self.a_addr[i]
    }

    /// Call `i`'s B leg address.
    pub fn b_addr(&self, i: usize) -> SocketAddr {
        self.b_addr[i]
    }

    /// How many calls.
    pub fn calls(&self) -> usize {
        self.a.len()
    }
}

/// Where one call's legs send.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Route {
    /// A leg's destination.
    pub a_to: SocketAddr,
    /// B leg's destination.
    pub b_to: SocketAddr,
    /// A leg speaks TURN: its packets are ChannelData on this channel.
    pub a_channel: Option<u16>,
}

/// A stretch of load: the first `calls` calls, `rounds` rounds.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Phase {
    /// Calls sending (the first ones of the routes).
    pub calls: usize,
    /// 20 ms rounds.
    pub rounds: u32,
}

/// What one stream did.
#[derive(Clone, Debug, Default)]
pub(crate) struct StreamTrace {
    /// Packets sent (sequence numbers `0..sent`).
    pub sent: u32,
    /// Sequence numbers received (bit set).
    pub received: Vec<u64>,
    /// Sequence numbers received no later than the bound given to [`run`].
    pub on_time: Vec<u64>,
    /// Per phase, the first sequence number sent in it (None: not sending then).
    pub phase_first: Vec<Option<u32>>,
}

impl StreamTrace {
    /// Whether packet `seq` arrived.
    pub fn got(&self, seq: u32) -> bool {
        self.received
            .get(seq as usize / 64)
            .is_some_and(|w| w & (1 << (seq % 64)) != 0)
    }

    /// Of the sequence numbers in `from..self.sent`, the last one that did not arrive in
    /// time (lost or late).
    pub fn last_missing_from(&self, from: u32) -> Option<u32> {
        (from..self.sent).rev().find(|&s| {
            self.on_time
                .get(s as usize / 64)
                .is_none_or(|w| w & (1 << (s % 64)) == 0)
        })
    }
}

/// What a load delivered.
#[derive(Clone, Debug, Default)]
pub(crate) struct Outcome {
    /// Packets handed to the kernel.
    pub sent: u64,
    /// Packets the plan asked for.
    pub planned: u64,
    /// Distinct packets received.
    pub received: u64,
    /// Packets received twice or more.
    pub duplicates: u64,
    /// Datagrams that were not RTP of this load.
    pub foreign: u64,
    /// `sendmmsg` errors.
    pub send_errors: u64,
    /// From the first planned send to the last one, seconds.
    pub send_seconds: f64,
    /// One-way latencies, nanoseconds, sorted.
    pub latency_ns: Vec<u32>,
    /// Per stream.
    pub streams: Vec<StreamTrace>,
    /// When each phase began, seconds after the load's start.
    pub phase_start: Vec<f64>,
}

impl Outcome {
    /// The latency at quantile `q` (0..1), microseconds.
    pub fn latency_us(&self, q: f64) -> Option<f64> {
        if self.latency_ns.is_empty() {
            return None;
        }
        let i = ((self.latency_ns.len() - 1) as f64 * q).round() as usize;
        Some(f64::from(self.latency_ns[i]) / 1000.0)
    }
}

/// The generator's raw sending socket (in the generator host).
pub(crate) struct RawSender(socket2::Socket);

impl RawSender {
    /// Open it in `ns`.
    pub fn open(ns: &HostNs) -> Result<RawSender> {
        let _in = ns.enter_net().map_err(|e| anyhow!("{e}"))?;
        let s = socket2::Socket::new(
            socket2::Domain::IPV4,
            socket2::Type::RAW,
            Some(socket2::Protocol::from(libc::IPPROTO_RAW)),
        )
        .context("open a raw IPv4 socket (needs CAP_NET_RAW in the sandbox)")?;
        let _ = s.set_send_buffer_size(4 << 20);
        Ok(RawSender(s))
    }
}

/// Write stream `k`'s packet `seq` (with IPv4 + UDP headers) into `out`; its length.
#[allow(clippy::too_many_arguments)]
fn build(
    out: &mut [u8],
    src: SocketAddr,
    dst: SocketAddr,
    channel: Option<u16>,
    stream: usize,
    seq: u32,
    sent_ns: u64,
) -> usize {
    let (IpAddr::V4(s), IpAddr::V4(d)) = (src.ip(), dst.ip()) else {
        return 0;
    };
    let extra = if channel.is_some() { CHANNEL_HEADER } else { 0 };
    let udp_len = 8 + extra + RTP_LEN;
    let total = 20 + udp_len;
    // IPv4 (RFC 791): the kernel fills total length, id and checksum of IPPROTO_RAW
    // datagrams (raw(7)); we give them anyway.
    out[0] = 0x45;
    out[1] = 0;
    out[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    out[4..8].copy_from_slice(&[0, 0, 0x40, 0]);
    out[8] = 64;
    out[9] = 17;
    out[10..12].copy_from_slice(&[0, 0]);
    out[12..16].copy_from_slice(&s.octets());
    out[16..20].copy_from_slice(&d.octets());
    // UDP (RFC 768), checksum 0: none.
    out[20..22].copy_from_slice(&src.port().to_be_bytes());
    out[22..24].copy_from_slice(&dst.port().to_be_bytes());
    out[24..26].copy_from_slice(&(udp_len as u16).to_be_bytes());
    out[26..28].copy_from_slice(&[0, 0]);
    let mut at = HEADERS;
    if let Some(ch) = channel {
        out[at..at + 2].copy_from_slice(&ch.to_be_bytes());
        out[at + 2..at + 4].copy_from_slice(&(RTP_LEN as u16).to_be_bytes());
        at += CHANNEL_HEADER;
    }
    // RTP (RFC 3550 §5.1): V=2, PT 0 (PCMU), seq, timestamp at 8 kHz, SSRC.
    let rtp = &mut out[at..at + RTP_LEN];
    rtp[0] = 0x80;
    rtp[1] = 0;
    rtp[2..4].copy_from_slice(&(seq as u16).to_be_bytes());
    rtp[4..8].copy_from_slice(&seq.wrapping_mul(160).to_be_bytes());
    rtp[8..12].copy_from_slice(&(stream as u32 + 1).to_be_bytes());
    rtp[12..20].copy_from_slice(&sent_ns.to_be_bytes());
    rtp[20..].fill(0xff);
    total
}

/// Nanoseconds since `epoch`.
fn ns_since(epoch: Instant) -> u64 {
    u64::try_from(now().duration_since(epoch).as_nanos()).unwrap_or(u64::MAX)
}

/// What the sender did.
struct Sent {
    sent: u64,
    planned: u64,
    errors: u64,
    seconds: f64,
    per_stream: Vec<u32>,
    phase_first: Vec<Vec<Option<u32>>>,
    phase_start: Vec<f64>,
}

/// Pace `phases` out of `raw`.
fn send(raw: &RawSender, legs: &Legs, routes: &[Route], phases: &[Phase], epoch: Instant) -> Sent {
    let _ = sys::set_timer_slack(1_000);
    let streams = 2 * phases.iter().map(|p| p.calls).max().unwrap_or(0);
    let mut s = Sent {
        sent: 0,
        planned: 0,
        errors: 0,
        seconds: 0.0,
        per_stream: vec![0; streams],
        phase_first: Vec::new(),
        phase_start: Vec::new(),
    };
    let mut bufs = vec![[0u8; HEADERS + CHANNEL_HEADER + RTP_LEN]; sys::MAX_BATCH];
    let mut lens = [0usize; sys::MAX_BATCH];
    let start = now();
    let mut phase_start = start;
    for phase in phases {
        let n = 2 * phase.calls;
        s.phase_first.push(
            (0..streams)
                .map(|k| (k < n).then_some(s.per_stream[k]))
                .collect(),
        );
        s.phase_start
            .push(phase_start.duration_since(start).as_secs_f64());
        let total = u64::from(phase.rounds) * n as u64;
        s.planned += total;
        let period = PERIOD.as_nanos() as u64;
        let due = |g: u64| phase_start + Duration::from_nanos(g * period / n.max(1) as u64);
        let mut g = 0u64;
        while g < total {
            let t = now();
            let first_due = due(g);
            if first_due > t {
                std::thread::sleep(first_due - t);
                continue;
            }
            let sent_ns = ns_since(epoch);
            let mut count = 0;
            let mut dst_ip: Option<IpAddr> = None;
            while count < sys::MAX_BATCH && g < total && due(g) <= t {
                let k = (g % n as u64) as usize;
                let (call, back) = (k / 2, k % 2 == 1);
                let r = &routes[call];
                let (src, dst, ch) = if back {
                    (legs.b_addr(call), r.b_to, None)
                } else {
                    (legs.a_addr(call), r.a_to, r.a_channel)
                };
                if dst_ip.is_some_and(|ip| ip != dst.ip()) {
                    break;
                }
                dst_ip = Some(dst.ip());
                let seq = s.per_stream[k];
                lens[count] = build(&mut bufs[count], src, dst, ch, k, seq, sent_ns);
                s.per_stream[k] += 1;
                count += 1;
                g += 1;
            }
            let Some(ip) = dst_ip else { continue };
            let packets: Vec<&[u8]> = bufs[..count]
                .iter()
                .zip(&lens)
                .map(|(b, &l)| &b[..l])
                .collect();
            let mut off = 0;
            while off < count {
                match sys::send_batch_to(raw.0.as_fd(), SocketAddr::new(ip, 0), &packets[off..]) {
                    Ok(0) => continue,
                    Ok(m) => {
                        off += m;
                        s.sent += m as u64;
                    }
                    Err(_) => {
                        // The batch's rest is not sent: not counted as sent.
                        s.errors += 1;
                        break;
                    }
                }
            }
        }
        phase_start += PERIOD * phase.rounds;
    }
    s.seconds = now().duration_since(start).as_secs_f64();
    s
}

/// Stream id of an RTP (or ChannelData-wrapped RTP) datagram of this generator.
fn stream_of(p: &[u8]) -> Option<usize> {
    let rtp = if p.first().is_some_and(|b| b & 0xc0 == 0x40) {
        p.get(CHANNEL_HEADER..)?
    } else {
        p
    };
    if rtp.len() < RTP_LEN || rtp[0] != 0x80 {
        return None;
    }
    let ssrc = u32::from_be_bytes([rtp[8], rtp[9], rtp[10], rtp[11]]);
    (ssrc as usize).checked_sub(1)
}

/// What the receiver counted.
struct Received {
    received: u64,
    duplicates: u64,
    foreign: u64,
    latency_ns: Vec<u32>,
    bits: Vec<Vec<u64>>,
    on_time: Vec<Vec<u64>>,
}

/// Count what arrives on the legs until `stop`.
fn receive(
    poll: &mut Poll,
    legs: &Legs,
    streams: usize,
    rounds: u32,
    epoch: Instant,
    late_ns: u64,
    stop: &AtomicBool,
) -> Result<Received> {
    let words = (rounds as usize).div_ceil(64);
    let mut r = Received {
        received: 0,
        duplicates: 0,
        foreign: 0,
        latency_ns: Vec::with_capacity(streams * rounds as usize),
        bits: vec![vec![0u64; words]; streams],
        on_time: vec![vec![0u64; words]; streams],
    };
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; sys::MAX_BATCH * SLOT];
    let mut lens = [0usize; sys::MAX_BATCH];
    loop {
        if stop.load(Ordering::Acquire) {
            return Ok(r);
        }
        match poll.poll(&mut events, Some(Duration::from_millis(50))) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        }
        for ev in &events {
            let t = ev.token().0;
            let sock = if t % 2 == 0 {
                &legs.a[t / 2]
            } else {
                &legs.b[t / 2]
            };
            loop {
                let n = sys::recv_sized(sock.as_fd(), &mut buf, SLOT, &mut lens)?;
                if n == 0 {
                    break;
                }
                let at = ns_since(epoch);
                for (k, &len) in lens[..n].iter().enumerate() {
                    let p = &buf[k * SLOT..k * SLOT + len];
                    let Some(stream) = stream_of(p).filter(|&s| s < streams) else {
                        r.foreign += 1;
                        continue;
                    };
                    let rtp = if p[0] & 0xc0 == 0x40 {
                        &p[CHANNEL_HEADER..]
                    } else {
                        p
                    };
                    let seq = u32::from(u16::from_be_bytes([rtp[2], rtp[3]]));
                    let Some(word) = r.bits[stream].get_mut(seq as usize / 64) else {
                        r.foreign += 1;
                        continue;
                    };
                    let bit = 1u64 << (seq % 64);
                    if *word & bit != 0 {
                        r.duplicates += 1;
                        continue;
                    }
                    *word |= bit;
                    r.received += 1;
                    let mut ts = [0u8; 8];
                    ts.copy_from_slice(&rtp[12..20]);
                    let sent = u64::from_be_bytes(ts);
                    let latency = at.saturating_sub(sent);
                    if latency <= late_ns {
                        r.on_time[stream][seq as usize / 64] |= bit;
                    }
                    r.latency_ns
                        .push(u32::try_from(latency).unwrap_or(u32::MAX));
                }
            }
        }
    }
}

/// Run `phases` over `routes` (at least as many as the largest phase's calls), wait
/// `drain` for packets still in flight, and count (packets later than `late` are marked
/// so per stream). Bounded: the phases' rounds.
pub(crate) fn run(
    raw: &RawSender,
    legs: &Legs,
    routes: &[Route],
    phases: &[Phase],
    drain: Duration,
    late: Duration,
) -> Result<Outcome> {
    let calls = phases.iter().map(|p| p.calls).max().unwrap_or(0);
    let rounds: u32 = phases.iter().map(|p| p.rounds).sum();
    if calls == 0 || calls > routes.len() || calls > legs.calls() {
        bail!("a load of {calls} calls over {} routes", routes.len());
    }
    if rounds == 0 || rounds > MAX_ROUNDS {
        bail!("a load of {rounds} rounds (1..={MAX_ROUNDS})");
    }
    let streams = 2 * calls;
    let mut poll = Poll::new()?;
    for i in 0..calls {
        poll.registry().register(
            &mut SourceFd(&legs.a[i].as_raw_fd()),
            Token(2 * i),
            Interest::READABLE,
        )?;
        poll.registry().register(
            &mut SourceFd(&legs.b[i].as_raw_fd()),
            Token(2 * i + 1),
            Interest::READABLE,
        )?;
    }
    // Leftovers of an earlier load would count as foreign; empty the queues first.
    drain_queues(legs, calls);
    let epoch = now();
    let stop = AtomicBool::new(false);
    let (sent, received) = std::thread::scope(|scope| {
        let late_ns = u64::try_from(late.as_nanos()).unwrap_or(u64::MAX);
        let (poll, stop) = (&mut poll, &stop);
        let receiver =
            scope.spawn(move || receive(poll, legs, streams, rounds, epoch, late_ns, stop));
        let sent = send(raw, legs, routes, phases, epoch);
        std::thread::sleep(drain);
        stop.store(true, Ordering::Release);
        let received = receiver
            .join()
            .map_err(|_| anyhow!("the receiver thread panicked"));
        (sent, received)
    });
    let mut received = received??;
    received.latency_ns.sort_unstable();
    let streams = sent
        .per_stream
        .iter()
        .zip(received.bits.into_iter().zip(received.on_time))
        .enumerate()
        .map(|(k, (&n, (bits, on_time)))| StreamTrace {
            sent: n,
            received: bits,
            on_time,
            phase_first: sent.phase_first.iter().map(|p| p[k]).collect(),
        })
        .collect();
    Ok(Outcome {
        sent: sent.sent,
        planned: sent.planned,
        received: received.received,
        duplicates: received.duplicates,
        foreign: received.foreign,
        send_errors: sent.errors,
        send_seconds: sent.seconds,
        latency_ns: received.latency_ns,
        streams,
        phase_start: sent.phase_start,
    })
}

/// Read and discard whatever waits on the first `calls` calls' legs.
fn drain_queues(legs: &Legs, calls: usize) {
    let mut buf = vec![0u8; sys::MAX_BATCH * SLOT];
    let mut lens = [0usize; sys::MAX_BATCH];
    for s in legs.a[..calls].iter().chain(&legs.b[..calls]) {
        while sys::recv_sized(s.as_fd(), &mut buf, SLOT, &mut lens).is_ok_and(|n| n > 0) {}
    }
}
