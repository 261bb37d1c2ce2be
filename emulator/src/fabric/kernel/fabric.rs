//! [`KernelFabric`]: a topology of network namespaces whose TUN devices are joined by the
//! shared [`Engine`](crate::fabric::engine::Engine), running on its own thread.
//!
//! Every packet a host's kernel sends leaves through the host's TUN device; the engine
//! thread reads it, passes it through links, routing, NATs and firewalls exactly as on the
//! virtual fabric, and writes it to the receiving host's TUN device. There is no kernel
//! forwarding, NAT or nftables between hosts: every decision is the engine's.
//!
//! The fast path: one readiness set ([`Waiter`]: mio's epoll plus a timerfd, so the
//! engine's next deadline is kept to the nanosecond) registered once; per wake-up up to
//! `READ_BATCH` packets from each ready device, then the writes; packets in pooled buffers (no allocation per
//! packet); virtio-net header offloads, so that TCP super-segments cross the engine whole
//! when [`Engine::passes_aggregates`] allows and are cut into packets in userspace when it
//! does not; consecutive UDP datagrams of a flow written as one USO super-datagram. One
//! engine thread: on the two-core machines this runs on, the senders and receivers need the
//! other core (docs/performance.md, `pinhole bench nat`).
//!
//! The engine thread owns the engine. The rest of the program talks to it through
//! [`KernelFabric`]'s methods (a channel plus a [`mio::Waker`]): link changes, NAT
//! actions, counters. Captured packets and the engine's events come back through bounded
//! channels ([`KernelFabric::poll_capture`], [`KernelFabric::poll_event`]). Time is the
//! real clock here, read only by this driver.

use super::batch::{Gro, LARGE, POOL_LARGE, Pool};
use super::sys::{self, HostNs, SysError, TunOffloads};
use super::wait::Waiter;
use crate::fabric::engine::{Captured, Engine, EngineError, EngineEvent, EngineStats};
use crate::link::LinkConfig;
use crate::nat::{MappingInfo, NatStats};
use crate::rng::SimRng;
use crate::topology::{Attachment, Topology};
use crate::wire::PacketBuf;
use crate::wire::offload::{self, Offload};
use mio::unix::SourceFd;
use mio::{Interest, Token, Waker};
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::Instant;

/// The interface name of every host's TUN device.
pub const IFNAME: &str = "eth0";

/// MTU of the hosts' TUN devices.
pub const MTU: u32 = 1500;

/// Packets read from one TUN device per wake-up before the others get a turn.
const READ_BATCH: usize = 64;

/// How long before the engine's next deadline its thread stops sleeping and starts
/// looking (busy) until the deadline: longer than the wake-up latency of an idle CPU.
const WAKE_EARLY: std::time::Duration = std::time::Duration::from_micros(250);

/// Engine events waiting for [`KernelFabric::poll_event`] at most; more are counted in
/// [`Snapshot::events_lost`] and dropped rather than stall the engine. A bounded std
/// channel allocates all its slots up front: 4,096 keep that at a few hundred KiB.
const EVENT_QUEUE: usize = 1 << 12;

/// What the engine thread forwards from `Engine::poll_event`, as it returns it.
type Event = (Instant, EngineEvent);

/// What can go wrong starting or steering the kernel fabric.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KernelError {
    /// Not inside pinhole's sandbox: [`sys::enter_sandbox`] must run first.
    #[error("the kernel fabric runs only inside pinhole's sandbox (enter_sandbox was not called)")]
    NotSandboxed,
    /// The OS refused something.
    #[error(transparent)]
    Sys(#[from] SysError),
    /// The topology or a NAT action is invalid.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The engine thread could not be started.
    #[error("cannot start the engine thread: {0}")]
    Thread(std::io::Error),
    /// The engine thread is gone.
    #[error("the kernel fabric's engine thread has stopped")]
    Stopped,
}

impl KernelError {
    /// Whether this is the environment's fault (no namespaces, no /dev/net/tun): exit 3.
    pub fn is_environment(&self) -> bool {
        match self {
            KernelError::NotSandboxed => true,
            KernelError::Sys(e) => e.is_unsupported(),
            _ => false,
        }
    }
}

/// A NAT action, applied by the engine thread.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NatAction {
    /// Drop all bindings.
    Reboot,
    /// Move live mappings to new external ports.
    Rebind,
    /// A new external address pool.
    Renumber(Vec<IpAddr>),
}

/// Counters of the engine at one moment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    /// Engine counters (sent, delivered, drops by place and reason).
    pub engine: EngineStats,
    /// Per NAT, in topology order.
    pub nats: Vec<NatStats>,
    /// Per NAT, live mappings.
    pub mappings: Vec<usize>,
    /// Per NAT, the live mappings themselves (sorted as [`crate::nat::Nat::mappings`]);
    /// filled only by [`KernelFabric::snapshot_with_mappings`].
    pub live: Vec<Vec<MappingInfo>>,
    /// Packets the engine could not write because a host's TUN queue was full.
    pub tun_full: u64,
    /// The checksum/segmentation offloads of the hosts' TUN devices.
    pub offloads: TunOffloads,
    /// Packets dropped because their virtio-net header could not be honoured.
    pub offload_errors: u64,
    /// Super-segments cut into packets in userspace (a link, firewall or capture needed
    /// per-packet semantics).
    pub segmented: u64,
    /// UDP datagrams written to a TUN device as part of a coalesced USO super-datagram
    /// rather than with a write of their own (all but the first of each).
    pub coalesced: u64,
    /// Engine events dropped because [`KernelFabric::poll_event`] had not taken the
    /// earlier ones (the queue holds 4,096).
    pub events_lost: u64,
}

enum Control {
    SetLink(Attachment, bool, LinkConfig),
    Nat(usize, NatAction, mpsc::Sender<Result<(), EngineError>>),
    Snapshot(mpsc::Sender<Snapshot>, bool),
    OutputWaker(Arc<Waker>),
    Stop,
}

/// A running kernel fabric. Dropping it stops the engine thread; the namespaces and TUN
/// devices go when the last handle to them closes (and with the sandbox in any case).
pub struct KernelFabric {
    topo: Topology,
    hosts: Arc<Vec<HostNs>>,
    control: mpsc::Sender<Control>,
    waker: Arc<Waker>,
    thread: Option<JoinHandle<()>>,
    captures: Option<mpsc::Receiver<Captured>>,
    events: mpsc::Receiver<Event>,
    epoch: Instant,
}

/// The /etc/hosts every host sees: localhost and every host name of the topology.
pub fn hosts_file(topo: &Topology) -> String {
    let mut s = String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    for h in &topo.hosts {
        for a in &h.addresses {
            s.push_str(&format!("{a}\t{}\n", h.name));
        }
    }
    s
}

impl KernelFabric {
    /// Create every host (network and mount namespace, TUN device with its addresses and
    /// default route) and start the engine thread. With `capture`, every packet crossing
    /// an interface is also sent to [`KernelFabric::poll_capture`] (for pcap files).
    ///
    /// The TUN devices get the virtio-net header and checksum/TSO/USO offloads unless the
    /// environment variable `PINHOLE_TUN_OFFLOAD` is `0` (for comparisons);
    /// [`KernelFabric::start_with`] chooses explicitly.
    pub fn start(topo: Topology, seed: u64, capture: bool) -> Result<KernelFabric, KernelError> {
        let offload = std::env::var_os("PINHOLE_TUN_OFFLOAD").is_none_or(|v| v != "0");
        KernelFabric::start_with(topo, seed, capture, offload)
    }

    /// [`KernelFabric::start`] with the TUN offloads on or off. With them on, the hosts'
    /// kernels hand over packets with partial checksums and TCP/UDP super-segments of up
    /// to 64 KiB; the engine passes them on whole while
    /// [`Engine::passes_aggregates`] holds, and otherwise completes the checksums and cuts
    /// them into ordinary packets before they enter it.
    pub fn start_with(
        topo: Topology,
        seed: u64,
        capture: bool,
        offload: bool,
    ) -> Result<KernelFabric, KernelError> {
        if !sys::in_sandbox() {
            return Err(KernelError::NotSandboxed);
        }
        #[allow(clippy::disallowed_methods)] // the real clock: this is a driver
        let epoch = Instant::now();
        let mut engine = Engine::new(topo.clone(), SimRng::new(seed).fork(0x1), epoch)?;
        engine.set_capture(capture);
        let routes = engine.routes().to_vec();
        let hosts_text = hosts_file(&topo);
        let mut hosts = Vec::new();
        let mut tuns = Vec::new();
        for h in &topo.hosts {
            let ns = HostNs::create(&h.name, &hosts_text)?;
            let plen = topo.networks[h.network].prefix.len();
            let addrs: Vec<(IpAddr, u8)> = h.addresses.iter().map(|a| (*a, plen)).collect();
            let gateways: Vec<IpAddr> = match routes[h.network].gateway {
                Some(Attachment::NatInside(n)) => vec![topo.nats[n].inside_address],
                Some(Attachment::FirewallInside(f)) => vec![topo.firewalls[f].inside_address],
                _ => vec![],
            };
            let (fd, offloads) = ns.add_tun_offload(IFNAME, MTU, &addrs, &gateways, offload)?;
            hosts.push(ns);
            tuns.push((fd, offloads));
        }
        // All devices come from one kernel and get the same offloads; report the weakest.
        let offloads = tuns
            .iter()
            .map(|(_, o)| *o)
            .min_by_key(|o| (o.vnet_hdr, o.flags.count_ones()))
            .unwrap_or_default();
        let tuns: Vec<Tun> = tuns
            .into_iter()
            .map(|(fd, o)| Tun {
                fd,
                vnet: o.vnet_hdr,
            })
            .collect();
        let waiter = Waiter::new(tuns.len() + 1)?;
        let os = |op: &str, e: std::io::Error| SysError::Os {
            op: op.into(),
            source: e,
        };
        for (h, t) in tuns.iter().enumerate() {
            waiter
                .registry()
                .register(
                    &mut SourceFd(&t.fd.as_raw_fd()),
                    Token(h),
                    Interest::READABLE,
                )
                .map_err(|e| os("register a TUN device", e))?;
        }
        let waker = Waker::new(waiter.registry(), Token(tuns.len()))
            .map_err(|e| os("create the engine's waker", e))?;
        let (tx, rx) = mpsc::channel();
        let (cap_tx, cap_rx) = mpsc::sync_channel(1 << 14);
        let (ev_tx, ev_rx) = mpsc::sync_channel(EVENT_QUEUE);
        let thread = std::thread::Builder::new()
            .name("pinhole-engine".into())
            .spawn(move || {
                engine_loop(
                    engine,
                    tuns,
                    offloads,
                    waiter,
                    rx,
                    capture.then_some(cap_tx),
                    ev_tx,
                )
            })
            .map_err(KernelError::Thread)?;
        Ok(KernelFabric {
            topo,
            hosts: Arc::new(hosts),
            control: tx,
            waker: Arc::new(waker),
            thread: Some(thread),
            captures: capture.then_some(cap_rx),
            events: ev_rx,
            epoch,
        })
    }

    /// The topology being run.
    pub fn topology(&self) -> &Topology {
        &self.topo
    }

    /// When the fabric started (t = 0 of its captures).
    pub fn epoch(&self) -> Instant {
        self.epoch
    }

    /// A host's namespaces (to spawn programs in it or open sockets in it).
    pub fn host(&self, id: usize) -> &HostNs {
        &self.hosts[id]
    }

    /// Every host's namespaces, shared (e.g. with a socket layer that enters a host's
    /// network namespace to open sockets there).
    pub fn hosts(&self) -> Arc<Vec<HostNs>> {
        Arc::clone(&self.hosts)
    }

    fn send(&self, c: Control) -> Result<(), KernelError> {
        self.control.send(c).map_err(|_| KernelError::Stopped)?;
        // The engine thread drains the control channel on every wake-up.
        let _ = self.waker.wake();
        Ok(())
    }

    /// Change an attachment's link in one direction (scenario `link:` steps).
    pub fn set_link(
        &self,
        at: Attachment,
        up: bool,
        config: LinkConfig,
    ) -> Result<(), KernelError> {
        self.send(Control::SetLink(at, up, config))
    }

    /// Apply a NAT action and wait for it to be done.
    pub fn nat_action(&self, nat: usize, action: NatAction) -> Result<(), KernelError> {
        let (tx, rx) = mpsc::channel();
        self.send(Control::Nat(nat, action, tx))?;
        rx.recv()
            .map_err(|_| KernelError::Stopped)?
            .map_err(KernelError::Engine)
    }

    /// The engine's counters now.
    pub fn snapshot(&self) -> Result<Snapshot, KernelError> {
        let (tx, rx) = mpsc::channel();
        self.send(Control::Snapshot(tx, false))?;
        rx.recv().map_err(|_| KernelError::Stopped)
    }

    /// [`KernelFabric::snapshot`] with every NAT's live mappings ([`Snapshot::live`]).
    pub fn snapshot_with_mappings(&self) -> Result<Snapshot, KernelError> {
        let (tx, rx) = mpsc::channel();
        self.send(Control::Snapshot(tx, true))?;
        rx.recv().map_err(|_| KernelError::Stopped)
    }

    /// The next captured packet, if capture is on and one is waiting.
    pub fn poll_capture(&self) -> Option<Captured> {
        self.captures.as_ref()?.try_recv().ok()
    }

    /// The engine's next event (drops, NAT mappings, link changes…) with the time it
    /// happened, if one is waiting. Events not taken pile up to 4,096; the rest
    /// are counted in [`Snapshot::events_lost`].
    pub fn poll_event(&self) -> Option<(Instant, EngineEvent)> {
        self.events.try_recv().ok()
    }

    /// Wake `waker` whenever captured packets or engine events have been queued for
    /// [`KernelFabric::poll_capture`] / [`KernelFabric::poll_event`], so that a driver
    /// waiting on its own readiness set drains the bounded queues before they fill.
    pub fn wake_on_output(&self, waker: Arc<Waker>) -> Result<(), KernelError> {
        self.send(Control::OutputWaker(waker))
    }

    /// Stop the engine thread and wait for it.
    pub fn stop(&mut self) {
        let _ = self.send(Control::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for KernelFabric {
    fn drop(&mut self) {
        self.stop();
    }
}

#[allow(clippy::disallowed_methods)] // the real clock: this is a driver
fn now() -> Instant {
    Instant::now()
}

/// A host's TUN device as the engine thread uses it.
struct Tun {
    fd: OwnedFd,
    /// Packets carry a virtio-net header.
    vnet: bool,
}

/// Counters of the driver itself.
#[derive(Default)]
struct DriverStats {
    tun_full: u64,
    offload_errors: u64,
    segmented: u64,
    coalesced: u64,
}

/// Write one packet from the engine to host `h`'s TUN device, with its virtio-net header
/// where the device has one (offload state restored for the packet's addresses now), or
/// cut into ordinary packets where the device takes none.
fn write_out(
    tun: &Tun,
    mut p: PacketBuf,
    pool: &mut Pool,
    scratch: &mut Vec<u8>,
    stats: &mut DriverStats,
) {
    let mut put = |r: Result<bool, SysError>| {
        // EAGAIN: the host's queue is full; the packet is lost, as on a real NIC.
        if !matches!(r, Ok(true)) {
            stats.tun_full += 1;
        }
    };
    match (tun.vnet, p.offload().copied()) {
        (true, off) => {
            let hdr = match off {
                Some(o) => o.to_header(p.as_mut_slice()),
                None => offload::PLAIN_HEADER,
            };
            put(sys::write_vnet(tun.fd.as_fd(), &hdr, p.as_slice()));
        }
        (false, None) => put(sys::write_packet(tun.fd.as_fd(), p.as_slice())),
        (false, Some(o)) => {
            let mut results = Vec::new();
            let cut = offload::segment(p.as_slice(), &o, scratch, |s| {
                results.push(sys::write_packet(tun.fd.as_fd(), s))
            });
            match cut {
                Ok(_) => results.into_iter().for_each(&mut put),
                Err(_) => stats.offload_errors += 1,
            }
        }
    }
    pool.put(p);
}

fn engine_loop(
    mut engine: Engine,
    tuns: Vec<Tun>,
    offloads: TunOffloads,
    mut waiter: Waiter,
    control: mpsc::Receiver<Control>,
    captures: Option<mpsc::SyncSender<Captured>>,
    events: mpsc::SyncSender<Event>,
) {
    // Delayed packets leave at their timers, not up to 50 µs (the default slack) later.
    if let Err(e) = sys::set_timer_slack(1) {
        tracing::warn!("kernel fabric: {e}");
    }
    let mut pool = Pool::new();
    // The receive buffer: every packet is read into it, then copied into a pooled small
    // buffer, or, if it is a super-segment passed on whole, handed over and replaced.
    let mut rx = PacketBuf::with_capacity(LARGE);
    let mut hdr = [0u8; offload::VNET_HDR_LEN];
    let mut scratch = Vec::with_capacity(LARGE);
    // Devices reported readable and not yet read until EAGAIN: the readiness set is
    // edge-triggered, so a device left with packets after a batch is not reported again;
    // while any is left the wait only looks (deadline now) and the reads go on.
    let mut unread = vec![false; tuns.len()];
    let mut stats = DriverStats::default();
    let events_lost = AtomicU64::new(0);
    let mut aggregates = engine.passes_aggregates();
    let mut output_waker: Option<Arc<Waker>> = None;
    loop {
        let t = now();
        if engine.poll_timeout().is_some_and(|d| d <= t) {
            engine.handle_timeout(t);
        }
        let mut gro: Option<Gro> = None;
        while let Some((h, p)) = engine.poll_to_host() {
            let p = match gro.as_mut() {
                Some(g) => match g.join(h, p, &mut pool) {
                    Ok(()) => continue,
                    Err(p) => p,
                },
                None => p,
            };
            if let Some(g) = gro.take() {
                let (gh, gp, n) = g.finish(&mut pool);
                stats.coalesced += n as u64 - 1;
                write_out(&tuns[gh], gp, &mut pool, &mut scratch, &mut stats);
            }
            let uso = if p.as_slice().first().is_some_and(|b| b >> 4 == 6) {
                sys::TUN_F_USO6
            } else {
                sys::TUN_F_USO4
            };
            let p = if aggregates && tuns[h].vnet && offloads.flags & uso != 0 {
                match Gro::start(h, p) {
                    Ok(g) => {
                        gro = Some(g);
                        continue;
                    }
                    Err(p) => p,
                }
            } else {
                p
            };
            write_out(&tuns[h], p, &mut pool, &mut scratch, &mut stats);
        }
        if let Some(g) = gro.take() {
            let (gh, gp, n) = g.finish(&mut pool);
            stats.coalesced += n as u64 - 1;
            write_out(&tuns[gh], gp, &mut pool, &mut scratch, &mut stats);
        }
        let mut queued = false;
        if let Some(c) = &captures {
            while let Some(p) = engine.poll_capture() {
                // A full capture channel drops the record rather than stall the engine.
                queued |= c.try_send(p).is_ok();
            }
        }
        while let Some(e) = engine.poll_event() {
            // Likewise a full event channel: the loss is counted.
            match events.try_send(e) {
                Ok(()) => queued = true,
                Err(_) => {
                    events_lost.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        if let Some(w) = output_waker.as_ref().filter(|_| queued) {
            let _ = w.wake();
        }
        // Control first (a link change applies before the next packets), then the wait.
        while let Ok(c) = control.try_recv() {
            match c {
                Control::SetLink(at, up, config) => {
                    engine.set_link(at, up, config);
                    aggregates = engine.passes_aggregates();
                }
                Control::Nat(id, action, reply) => {
                    let t = now();
                    let r = match action {
                        NatAction::Reboot => {
                            engine.nat_mut(id).reboot(t);
                            Ok(())
                        }
                        NatAction::Rebind => {
                            engine.nat_mut(id).rebind(t);
                            Ok(())
                        }
                        NatAction::Renumber(addrs) => engine.renumber_nat(t, id, addrs),
                    };
                    let _ = reply.send(r);
                }
                Control::Snapshot(reply, with_mappings) => {
                    let n = engine.topology().nats.len();
                    let live = if with_mappings {
                        (0..n).map(|i| engine.nat(i).mappings()).collect()
                    } else {
                        Vec::new()
                    };
                    let _ = reply.send(Snapshot {
                        engine: engine.stats().clone(),
                        nats: (0..n).map(|i| engine.nat(i).stats().clone()).collect(),
                        mappings: (0..n).map(|i| engine.nat(i).mapping_count()).collect(),
                        live,
                        tun_full: stats.tun_full,
                        offloads,
                        offload_errors: stats.offload_errors,
                        segmented: stats.segmented,
                        coalesced: stats.coalesced,
                        events_lost: events_lost.load(Ordering::Relaxed),
                    });
                }
                Control::OutputWaker(w) => output_waker = Some(w),
                Control::Stop => return,
            }
        }
        // Sleep until a little before the engine's next deadline, then look without
        // sleeping until it is due (the top of the loop handles it): a thread woken from an
        // idle CPU by its timer runs 50–200 µs late on the machines measured (timerfd or
        // not, timer slack 1 ns or 50 µs), and a delayed packet would be that late.
        let deadline = if unread.iter().any(|u| *u) {
            Some(now())
        } else {
            engine
                .poll_timeout()
                .map(|d| d.checked_sub(WAKE_EARLY).unwrap_or(d))
        };
        if let Err(e) = waiter.wait(deadline) {
            tracing::error!("kernel fabric: {e}");
            return;
        }
        for ev in waiter.events() {
            if let Some(u) = unread.get_mut(ev.token().0) {
                *u = true;
            }
        }
        let t = now();
        // Super-segments handed to the engine whole in this round: at most POOL_LARGE, so
        // that every large buffer goes back into the pool once written and memory stays
        // bounded (the rest wait in the TUN queue for the next round).
        let mut large_out = 0;
        for (h, tun) in tuns.iter().enumerate() {
            if !unread[h] {
                continue;
            }
            let mut drained = false;
            for _ in 0..READ_BATCH {
                if large_out >= POOL_LARGE {
                    break;
                }
                let space = rx.fill_space();
                let read = if tun.vnet {
                    sys::read_vnet(tun.fd.as_fd(), &mut hdr, space)
                } else {
                    sys::read_packet(tun.fd.as_fd(), space)
                };
                let n = match read {
                    Ok(Some(n)) => n,
                    // EAGAIN: the device is empty until it is reported again. An error
                    // other than EAGAIN is not retried either (it would repeat).
                    Ok(None) | Err(_) => {
                        drained = true;
                        break;
                    }
                };
                if rx.set_filled(n).is_err() {
                    continue;
                }
                let off = if tun.vnet {
                    match Offload::from_header(&hdr, rx.as_slice()) {
                        Ok(o) => o,
                        Err(_) => {
                            stats.offload_errors += 1;
                            continue;
                        }
                    }
                } else {
                    None
                };
                match off {
                    // Passed on whole: the receiving kernel completes or segments it.
                    Some(o) if aggregates && o.is_gso() => {
                        large_out += 1;
                        let mut p = std::mem::replace(&mut rx, pool.large());
                        p.set_offload(Some(o));
                        engine.handle_from_host(t, h, p);
                    }
                    Some(o) if aggregates => {
                        let mut p = pool.copy_of(rx.as_slice());
                        p.set_offload(Some(o));
                        engine.handle_from_host(t, h, p);
                    }
                    // Per-packet semantics on the way: complete checksums and cut
                    // super-segments here, so that links and firewalls see real packets.
                    Some(o) => {
                        stats.segmented += u64::from(o.is_gso());
                        let cut = offload::segment(rx.as_slice(), &o, &mut scratch, |s| {
                            let p = pool.copy_of(s);
                            engine.handle_from_host(t, h, p);
                        });
                        if cut.is_err() {
                            stats.offload_errors += 1;
                        }
                    }
                    None => {
                        let p = pool.copy_of(rx.as_slice());
                        engine.handle_from_host(t, h, p);
                    }
                }
            }
            unread[h] = !drained;
        }
    }
}
