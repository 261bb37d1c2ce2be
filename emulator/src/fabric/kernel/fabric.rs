//! [`KernelFabric`]: a topology of network namespaces whose TUN devices are joined by the
//! shared [`Engine`](crate::fabric::engine::Engine), running on its own thread.
//!
//! Every packet a host's kernel sends leaves through the host's TUN device; the engine
//! thread reads it, passes it through links, routing, NATs and firewalls exactly as on the
//! virtual fabric, and writes it to the receiving host's TUN device. There is no kernel
//! forwarding, NAT or nftables between hosts: every decision is the engine's.
//!
//! The engine thread owns the engine. The rest of the program talks to it through
//! [`KernelFabric`]'s methods (a channel plus a wake-up pipe): link changes, NAT actions,
//! counters. Time is the real clock here, read only by this driver.

use super::sys::{self, HostNs, SysError};
use crate::fabric::engine::{Captured, Engine, EngineError, EngineStats};
use crate::link::LinkConfig;
use crate::nat::NatStats;
use crate::rng::SimRng;
use crate::topology::{Attachment, Topology};
use crate::wire::PacketBuf;
use std::net::IpAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The interface name of every host's TUN device.
pub const IFNAME: &str = "eth0";

/// MTU of the hosts' TUN devices.
pub const MTU: u32 = 1500;

/// Packets read from one TUN device per wake-up before the others get a turn.
const READ_BATCH: usize = 64;

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
    /// Packets the engine could not write because a host's TUN queue was full.
    pub tun_full: u64,
}

enum Control {
    SetLink(Attachment, bool, LinkConfig),
    Nat(usize, NatAction, mpsc::Sender<Result<(), EngineError>>),
    Snapshot(mpsc::Sender<Snapshot>),
    Stop,
}

/// A running kernel fabric. Dropping it stops the engine thread; the namespaces and TUN
/// devices go when the last handle to them closes (and with the sandbox in any case).
pub struct KernelFabric {
    topo: Topology,
    hosts: Arc<Vec<HostNs>>,
    control: mpsc::Sender<Control>,
    wake: OwnedFd,
    thread: Option<JoinHandle<()>>,
    captures: Option<mpsc::Receiver<Captured>>,
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
    pub fn start(topo: Topology, seed: u64, capture: bool) -> Result<KernelFabric, KernelError> {
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
            let tun = ns.add_tun(IFNAME, MTU, &addrs, &gateways)?;
            hosts.push(ns);
            tuns.push(tun);
        }
        let (wake_rx, wake_tx) = sys::pipe_nonblocking()?;
        let (tx, rx) = mpsc::channel();
        let (cap_tx, cap_rx) = mpsc::sync_channel(1 << 14);
        let thread = std::thread::Builder::new()
            .name("pinhole-engine".into())
            .spawn(move || engine_loop(engine, tuns, wake_rx, rx, capture.then_some(cap_tx)))
            .map_err(KernelError::Thread)?;
        Ok(KernelFabric {
            topo,
            hosts: Arc::new(hosts),
            control: tx,
            wake: wake_tx,
            thread: Some(thread),
            captures: capture.then_some(cap_rx),
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
        // A full pipe already wakes the thread; a lost byte is harmless.
        let _ = sys::write_packet(self.wake.as_fd(), &[1]);
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
        self.send(Control::Snapshot(tx))?;
        rx.recv().map_err(|_| KernelError::Stopped)
    }

    /// The next captured packet, if capture is on and one is waiting.
    pub fn poll_capture(&self) -> Option<Captured> {
        self.captures.as_ref()?.try_recv().ok()
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

fn engine_loop(
    mut engine: Engine,
    tuns: Vec<OwnedFd>,
    wake: OwnedFd,
    control: mpsc::Receiver<Control>,
    captures: Option<mpsc::SyncSender<Captured>>,
) {
    let mut buf = vec![0u8; 65536];
    let mut ready = vec![false; tuns.len() + 1];
    let mut tun_full = 0u64;
    loop {
        let t = now();
        if engine.poll_timeout().is_some_and(|d| d <= t) {
            engine.handle_timeout(t);
        }
        while let Some((h, p)) = engine.poll_to_host() {
            // EAGAIN: the host's queue is full; the packet is lost, as on a real NIC.
            match sys::write_packet(tuns[h].as_fd(), p.as_slice()) {
                Ok(true) => {}
                Ok(false) | Err(_) => tun_full += 1,
            }
        }
        if let Some(c) = &captures {
            while let Some(p) = engine.poll_capture() {
                // A full capture channel drops the record rather than stall the engine.
                let _ = c.try_send(p);
            }
        }
        while engine.poll_event().is_some() {}
        let timeout = engine
            .poll_timeout()
            .map(|d| d.saturating_duration_since(now()))
            .unwrap_or(Duration::from_secs(1));
        let mut fds: Vec<_> = tuns.iter().map(|f| f.as_fd()).collect();
        fds.push(wake.as_fd());
        if sys::wait_readable(&fds, Some(timeout), &mut ready).is_err() {
            continue;
        }
        let t = now();
        for (h, tun) in tuns.iter().enumerate() {
            if !ready[h] {
                continue;
            }
            for _ in 0..READ_BATCH {
                match sys::read_packet(tun.as_fd(), &mut buf) {
                    Ok(Some(n)) => engine.handle_from_host(t, h, PacketBuf::from_slice(&buf[..n])),
                    _ => break,
                }
            }
        }
        if ready[tuns.len()] {
            while let Ok(Some(_)) = sys::read_packet(wake.as_fd(), &mut buf) {}
        }
        while let Ok(c) = control.try_recv() {
            match c {
                Control::SetLink(at, up, config) => engine.set_link(at, up, config),
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
                Control::Snapshot(reply) => {
                    let n = engine.topology().nats.len();
                    let _ = reply.send(Snapshot {
                        engine: engine.stats().clone(),
                        nats: (0..n).map(|i| engine.nat(i).stats().clone()).collect(),
                        mappings: (0..n).map(|i| engine.nat(i).mapping_count()).collect(),
                        tun_full,
                    });
                }
                Control::Stop => return,
            }
        }
    }
}
