//! The virtual fabric: a whole topology in one thread under a virtual clock.
//!
//! Each host is a smoltcp [`Interface`] on an in-memory device, so UDP, TCP and ICMP
//! behave as on a real stack (retransmissions, simultaneous open, port-unreachable) without a
//! home-made TCP. Agents (built-in clients and servers) open sockets on hosts through
//! [`Sim`]'s socket methods, and the caller drives time:
//!
//! ```text
//! loop {
//!     let t = min(sim.poll_timeout(), agents' timeouts, next step);
//!     sim.advance(t);            // deliver everything due up to t, in time order
//!     agents read/write sockets; // then sim.flush() to push their packets out now
//! }
//! ```
//!
//! Packets between hosts take the path of [`Engine`]: links,
//! routing, NATs and firewalls, the same code the kernel fabric runs.
//!
//! ```
//! # #![allow(clippy::disallowed_methods)]
//! use emulator::fabric::sim::Sim;
//! use emulator::nat::{NatConfig, Preset};
//! use emulator::topology::Topology;
//! use std::time::{Duration, Instant};
//!
//! let topo = Topology::builder()
//!     .network("internet", "203.0.113.0/24")
//!     .network("home", "10.0.1.0/24")
//!     .host("alice", "home", "10.0.1.2")
//!     .host("server", "internet", "203.0.113.5")
//!     .nat(
//!         "nat",
//!         "home",
//!         "internet",
//!         NatConfig::preset(Preset::Symmetric, vec!["203.0.113.11".parse()?]),
//!     )
//!     .build()?;
//! let epoch = Instant::now(); // the only clock read: t = 0 of virtual time
//! let mut sim = Sim::new(topo, 7, epoch)?;
//! let (server, _) = sim.udp_bind(1, None, 3478)?;
//! let (alice, _) = sim.udp_bind(0, None, 5000)?;
//! sim.udp_send(alice, "203.0.113.5:3478".parse()?, None, b"hello")?;
//! // Drive: jump to what is due, let agents read and write, repeat.
//! sim.advance(epoch + Duration::from_millis(1));
//! let (from, _, data) = sim.udp_recv(server).expect("delivered");
//! assert_eq!(data, b"hello");
//! assert_eq!(from.ip().to_string(), "203.0.113.11"); // translated by the NAT
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use super::engine::{Engine, EngineError, EngineEvent, EngineStats};
use crate::firewall::Firewall;
use crate::link::Link;
use crate::nat::Nat;
use crate::rng::SimRng;
use crate::topology::{Attachment, Topology};
use crate::wire::PacketBuf;
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{Device, DeviceCapabilities, Medium};
use smoltcp::socket::{tcp, udp};
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr, IpEndpoint, IpListenEndpoint};
use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

pub use smoltcp::socket::tcp::State as TcpState;

/// A socket on a virtual host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SocketId {
    /// The host.
    pub host: usize,
    handle: SocketHandle,
}

/// Something that happened in the fabric, for reports.
pub type SimEvent = EngineEvent;

/// Counters of a fabric run.
pub type SimStats = EngineStats;

/// Errors of socket operations on virtual hosts.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// The topology or a NAT action is invalid.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The address is not one of the host's.
    #[error("{0} is not an address of host `{1}`")]
    NotLocal(IpAddr, String),
    /// The port is taken.
    #[error("port {0} is already in use on host `{1}`")]
    PortInUse(u16, String),
    /// Sending failed (buffer full, unaddressable).
    #[error("send failed: {0}")]
    Send(String),
    /// No such socket.
    #[error("no such socket")]
    NoSocket,
}

/// An in-memory device: frames in from the fabric, frames out to it.
struct QueueDevice {
    rx: VecDeque<Vec<u8>>,
    tx: VecDeque<Vec<u8>>,
    mtu: usize,
}

struct RxTok(Vec<u8>);
struct TxTok<'a>(&'a mut VecDeque<Vec<u8>>);

impl smoltcp::phy::RxToken for RxTok {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl smoltcp::phy::TxToken for TxTok<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut v = vec![0u8; len];
        let r = f(&mut v);
        self.0.push_back(v);
        r
    }
}

impl Device for QueueDevice {
    type RxToken<'a> = RxTok;
    type TxToken<'a> = TxTok<'a>;

    fn receive(
        &mut self,
        _t: smoltcp::time::Instant,
    ) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let p = self.rx.pop_front()?;
        Some((RxTok(p), TxTok(&mut self.tx)))
    }

    fn transmit(&mut self, _t: smoltcp::time::Instant) -> Option<Self::TxToken<'_>> {
        Some(TxTok(&mut self.tx))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut c = DeviceCapabilities::default();
        c.medium = Medium::Ip;
        c.max_transmission_unit = self.mtu;
        c
    }
}

struct SimHost {
    iface: Interface,
    device: QueueDevice,
    sockets: SocketSet<'static>,
    rng: SimRng,
    used_ports: BTreeMap<(bool, u16), usize>,
    socket_ports: BTreeMap<SocketHandle, (bool, u16)>,
}

const UDP_RX_PACKETS: usize = 256;
const UDP_BUF_BYTES: usize = 256 * 1024;
const TCP_BUF_BYTES: usize = 64 * 1024;

/// The virtual fabric. See the module docs for the drive loop.
pub struct Sim {
    epoch: Instant,
    now: Instant,
    engine: Engine,
    hosts: Vec<SimHost>,
}

fn smol_now(epoch: Instant, now: Instant) -> smoltcp::time::Instant {
    smoltcp::time::Instant::from_micros(now.saturating_duration_since(epoch).as_micros() as i64)
}

fn to_smol(a: IpAddr) -> IpAddress {
    match a {
        IpAddr::V4(v) => IpAddress::Ipv4(v),
        IpAddr::V6(v) => IpAddress::Ipv6(v),
    }
}

fn from_smol(a: IpAddress) -> IpAddr {
    match a {
        IpAddress::Ipv4(v) => IpAddr::V4(v),
        IpAddress::Ipv6(v) => IpAddr::V6(v),
    }
}

fn from_ep(e: IpEndpoint) -> SocketAddr {
    SocketAddr::new(from_smol(e.addr), e.port)
}

impl Sim {
    /// Build the fabric at virtual time `epoch` (the scenario's t = 0). All randomness (NAT
    /// port choice, link fates, TCP initial sequence numbers, ephemeral ports) derives from
    /// `seed`.
    pub fn new(topo: Topology, seed: u64, epoch: Instant) -> Result<Sim, SimError> {
        let root = SimRng::new(seed);
        let engine = Engine::new(topo, root.fork(0x1), epoch)?;
        let topo = engine.topology();
        let routes = engine.routes();
        let mut hosts = Vec::new();
        for (i, h) in topo.hosts.iter().enumerate() {
            let mut rng = root.fork(0x1000 + i as u64);
            let mut device = QueueDevice {
                rx: VecDeque::new(),
                tx: VecDeque::new(),
                mtu: 1500,
            };
            let mut config = Config::new(HardwareAddress::Ip);
            config.random_seed = rng.next_u64();
            let mut iface = Interface::new(config, &mut device, smol_now(epoch, epoch));
            let prefix = topo.networks[h.network].prefix;
            iface.update_ip_addrs(|addrs| {
                for a in &h.addresses {
                    // The address count is bounded by the smoltcp feature; the scenario
                    // validator limits hosts to fewer addresses.
                    let _ = addrs.push(IpCidr::new(to_smol(*a), prefix.len()));
                }
            });
            let gateway = match routes[h.network].gateway {
                Some(Attachment::NatInside(n)) => Some(topo.nats[n].inside_address),
                Some(Attachment::FirewallInside(f)) => Some(topo.firewalls[f].inside_address),
                // A flat routed segment: the medium is IP (no neighbour discovery), so any
                // gateway on-link makes smoltcp hand every off-prefix packet to the fabric,
                // which routes it (e.g. to a firewall's inside network).
                _ => prefix.nth(1),
            };
            match gateway {
                Some(IpAddr::V4(v)) => {
                    let _ = iface.routes_mut().add_default_ipv4_route(v);
                }
                Some(IpAddr::V6(v)) => {
                    let _ = iface.routes_mut().add_default_ipv6_route(v);
                }
                None => {}
            }
            hosts.push(SimHost {
                iface,
                device,
                sockets: SocketSet::new(Vec::new()),
                rng,
                used_ports: BTreeMap::new(),
                socket_ports: BTreeMap::new(),
            });
        }
        Ok(Sim {
            epoch,
            now: epoch,
            engine,
            hosts,
        })
    }

    /// The current virtual time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The virtual time of t = 0.
    pub fn epoch(&self) -> Instant {
        self.epoch
    }

    /// The topology being run.
    pub fn topology(&self) -> &Topology {
        self.engine.topology()
    }

    /// The packet engine (routing, NATs, firewalls, links).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The packet engine, mutable (capture, direct injection).
    pub fn engine_mut(&mut self) -> &mut Engine {
        &mut self.engine
    }

    /// Counters so far.
    pub fn stats(&self) -> &SimStats {
        self.engine.stats()
    }

    /// Events discarded because nobody drained [`Sim::poll_event`] (bounded memory).
    pub fn events_discarded(&self) -> u64 {
        self.engine.events_discarded()
    }

    /// A NAT by index.
    pub fn nat(&self, id: usize) -> &Nat {
        self.engine.nat(id)
    }

    /// A NAT by index, mutable (scenario `nat:` reboot and rebind).
    pub fn nat_mut(&mut self, id: usize) -> &mut Nat {
        self.engine.nat_mut(id)
    }

    /// Give NAT `id` a new external address pool (scenario `nat: renumber`).
    pub fn renumber_nat(&mut self, id: usize, external: Vec<IpAddr>) -> Result<(), SimError> {
        Ok(self.engine.renumber_nat(self.now, id, external)?)
    }

    /// A firewall by index.
    pub fn firewall(&self, id: usize) -> &Firewall {
        self.engine.firewall(id)
    }

    /// The link of an attachment in one direction (`up`: away from it), if it has one.
    pub fn link(&self, at: Attachment, up: bool) -> Option<&Link> {
        self.engine.link(at, up)
    }

    /// Replace the settings of an attachment's link in one direction (scenario `link:`
    /// steps), creating the link if the attachment had none.
    pub fn set_link(&mut self, at: Attachment, up: bool, config: crate::link::LinkConfig) {
        self.engine.set_link(at, up, config)
    }

    /// The earliest time something is due: a link delivery, a NAT or firewall timer, or a
    /// host stack's timer.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        let mut t = self.engine.poll_timeout();
        let now_s = smol_now(self.epoch, self.now);
        for h in &mut self.hosts {
            if let Some(at) = h.iface.poll_at(now_s, &h.sockets) {
                let d = Duration::from_micros(at.total_micros().max(0) as u64);
                let x = (self.epoch + d).max(self.now);
                t = Some(t.map_or(x, |t| t.min(x)));
            }
        }
        t
    }

    /// Run everything due up to and including `to`, in time order, and set the clock to `to`.
    /// Times before the current time are treated as now.
    pub fn advance(&mut self, to: Instant) {
        let to = to.max(self.now);
        // Bounded: every iteration either moves time forward or consumes due work.
        let mut guard = 0u64;
        loop {
            self.flush();
            match self.poll_timeout() {
                Some(t) if t <= to => {
                    let t = t.max(self.now);
                    if t == self.now {
                        guard += 1;
                        if guard > 1_000_000 {
                            // A stack asking to be polled now forever; move on.
                            break;
                        }
                    } else {
                        guard = 0;
                    }
                    self.now = t;
                    self.engine.handle_timeout(t);
                }
                _ => break,
            }
        }
        self.now = to;
        self.engine.handle_timeout(to);
        self.flush();
    }

    /// Push out whatever agents wrote to sockets, and deliver whatever is due, at the
    /// current time, until nothing moves.
    pub fn flush(&mut self) {
        let now = self.now;
        let ts = smol_now(self.epoch, now);
        loop {
            let mut progress = false;
            while let Some((h, p)) = self.engine.poll_to_host() {
                self.hosts[h].device.rx.push_back(p.as_slice().to_vec());
                progress = true;
            }
            for h in 0..self.hosts.len() {
                let host = &mut self.hosts[h];
                host.iface.poll(ts, &mut host.device, &mut host.sockets);
                while let Some(p) = host.device.tx.pop_front() {
                    self.engine
                        .handle_from_host(now, h, PacketBuf::from_slice(&p));
                    progress = true;
                }
            }
            if !progress {
                break;
            }
        }
    }

    /// The next fabric event, oldest first.
    pub fn poll_event(&mut self) -> Option<(Instant, SimEvent)> {
        self.engine.poll_event()
    }

    // ===== sockets for agents =====

    /// A free ephemeral port on `host` (seeded choice in Linux's default range).
    pub fn ephemeral_port(&mut self, host: usize, tcp: bool) -> Result<u16, SimError> {
        self.pick_port(host, tcp)
            .ok_or_else(|| SimError::PortInUse(0, self.engine.topology().hosts[host].name.clone()))
    }

    fn pick_port(&mut self, host: usize, tcp: bool) -> Option<u16> {
        let h = &mut self.hosts[host];
        // Linux's default ephemeral range (net.ipv4.ip_local_port_range).
        for _ in 0..64 {
            let p = h.rng.range_inclusive(32768, 60999) as u16;
            if !h.used_ports.contains_key(&(tcp, p)) {
                return Some(p);
            }
        }
        (32768..=60999).find(|p| !h.used_ports.contains_key(&(tcp, *p)))
    }

    fn check_local(&self, host: usize, addr: Option<IpAddr>) -> Result<(), SimError> {
        if let Some(a) = addr
            && !a.is_unspecified()
            && !self.engine.topology().hosts[host].addresses.contains(&a)
        {
            return Err(SimError::NotLocal(
                a,
                self.engine.topology().hosts[host].name.clone(),
            ));
        }
        Ok(())
    }

    /// Open a UDP socket on `host` bound to `addr` (None or unspecified: every address) and
    /// `port` (0: an ephemeral port). Returns the socket and its port.
    pub fn udp_bind(
        &mut self,
        host: usize,
        addr: Option<IpAddr>,
        port: u16,
    ) -> Result<(SocketId, u16), SimError> {
        self.check_local(host, addr)?;
        let port = if port == 0 {
            self.pick_port(host, false).ok_or_else(|| {
                SimError::PortInUse(0, self.engine.topology().hosts[host].name.clone())
            })?
        } else {
            port
        };
        let specific = addr.filter(|a| !a.is_unspecified());
        let h = &mut self.hosts[host];
        // One socket per (port) unless each binds a distinct specific address.
        let key = (false, port);
        if specific.is_none() && h.used_ports.contains_key(&key) {
            return Err(SimError::PortInUse(
                port,
                self.engine.topology().hosts[host].name.clone(),
            ));
        }
        let mut s = udp::Socket::new(
            udp::PacketBuffer::new(
                vec![udp::PacketMetadata::EMPTY; UDP_RX_PACKETS],
                vec![0; UDP_BUF_BYTES],
            ),
            udp::PacketBuffer::new(
                vec![udp::PacketMetadata::EMPTY; UDP_RX_PACKETS],
                vec![0; UDP_BUF_BYTES],
            ),
        );
        let ep = IpListenEndpoint {
            addr: specific.map(to_smol),
            port,
        };
        s.bind(ep)
            .map_err(|e| SimError::Send(format!("bind: {e}")))?;
        let handle = h.sockets.add(s);
        *h.used_ports.entry(key).or_insert(0) += 1;
        h.socket_ports.insert(handle, key);
        Ok((SocketId { host, handle }, port))
    }

    /// Send a datagram from a UDP socket. `from` picks the source address on a socket bound
    /// to every address (None: the host's first address towards the destination).
    pub fn udp_send(
        &mut self,
        s: SocketId,
        to: SocketAddr,
        from: Option<IpAddr>,
        data: &[u8],
    ) -> Result<(), SimError> {
        let h = self.hosts.get_mut(s.host).ok_or(SimError::NoSocket)?;
        let sock = h.sockets.get_mut::<udp::Socket>(s.handle);
        let mut meta: udp::UdpMetadata = IpEndpoint::new(to_smol(to.ip()), to.port()).into();
        meta.local_address = from.map(to_smol);
        sock.send_slice(data, meta)
            .map_err(|e| SimError::Send(e.to_string()))
    }

    /// Receive a datagram: `(source, local address it was sent to, payload)`.
    pub fn udp_recv(&mut self, s: SocketId) -> Option<(SocketAddr, Option<IpAddr>, Vec<u8>)> {
        let h = self.hosts.get_mut(s.host)?;
        let sock = h.sockets.get_mut::<udp::Socket>(s.handle);
        let (data, meta) = sock.recv().ok()?;
        Some((
            from_ep(meta.endpoint),
            meta.local_address.map(from_smol),
            data.to_vec(),
        ))
    }

    /// Open a TCP connection from `host` (`local_port` 0: ephemeral) to `remote`.
    pub fn tcp_connect(
        &mut self,
        host: usize,
        local_port: u16,
        remote: SocketAddr,
    ) -> Result<(SocketId, u16), SimError> {
        let port = if local_port == 0 {
            self.pick_port(host, true).ok_or_else(|| {
                SimError::PortInUse(0, self.engine.topology().hosts[host].name.clone())
            })?
        } else {
            local_port
        };
        let h = &mut self.hosts[host];
        let mut s = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; TCP_BUF_BYTES]),
            tcp::SocketBuffer::new(vec![0; TCP_BUF_BYTES]),
        );
        s.connect(
            h.iface.context(),
            IpEndpoint::new(to_smol(remote.ip()), remote.port()),
            port,
        )
        .map_err(|e| SimError::Send(format!("connect: {e}")))?;
        let handle = h.sockets.add(s);
        *h.used_ports.entry((true, port)).or_insert(0) += 1;
        h.socket_ports.insert(handle, (true, port));
        Ok((SocketId { host, handle }, port))
    }

    /// A TCP socket listening on `port` (one connection per socket, smoltcp style).
    pub fn tcp_listen(&mut self, host: usize, port: u16) -> Result<SocketId, SimError> {
        let h = &mut self.hosts[host];
        let mut s = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; TCP_BUF_BYTES]),
            tcp::SocketBuffer::new(vec![0; TCP_BUF_BYTES]),
        );
        s.listen(port)
            .map_err(|e| SimError::Send(format!("listen: {e}")))?;
        let handle = h.sockets.add(s);
        *h.used_ports.entry((true, port)).or_insert(0) += 1;
        h.socket_ports.insert(handle, (true, port));
        Ok(SocketId { host, handle })
    }

    /// The state of a TCP socket.
    pub fn tcp_state(&mut self, s: SocketId) -> tcp::State {
        self.hosts[s.host]
            .sockets
            .get::<tcp::Socket>(s.handle)
            .state()
    }

    /// The remote endpoint of a TCP socket, once known.
    pub fn tcp_remote(&mut self, s: SocketId) -> Option<SocketAddr> {
        self.hosts[s.host]
            .sockets
            .get::<tcp::Socket>(s.handle)
            .remote_endpoint()
            .map(from_ep)
    }

    /// Queue bytes on a TCP socket; returns how many fit.
    pub fn tcp_send(&mut self, s: SocketId, data: &[u8]) -> Result<usize, SimError> {
        let sock = self.hosts[s.host].sockets.get_mut::<tcp::Socket>(s.handle);
        if !sock.may_send() {
            return Ok(0);
        }
        sock.send_slice(data)
            .map_err(|e| SimError::Send(e.to_string()))
    }

    /// Close the sending side of a TCP socket gracefully: a FIN follows the queued bytes;
    /// the socket stays readable until [`Sim::close`].
    pub fn tcp_shutdown(&mut self, s: SocketId) {
        self.hosts[s.host]
            .sockets
            .get_mut::<tcp::Socket>(s.handle)
            .close();
    }

    /// Take whatever bytes arrived on a TCP socket.
    pub fn tcp_recv(&mut self, s: SocketId) -> Vec<u8> {
        let sock = self.hosts[s.host].sockets.get_mut::<tcp::Socket>(s.handle);
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        while sock.can_recv() {
            match sock.recv_slice(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
        out
    }

    /// Close and remove a socket (TCP: abort, no lingering state). A connected TCP
    /// socket's RST goes out before the socket is removed, as a real stack's would.
    pub fn close(&mut self, s: SocketId) {
        let h = &mut self.hosts[s.host];
        if h.socket_ports.contains_key(&s.handle) {
            let aborted = h.sockets.iter_mut().any(|(handle, sock)| match sock {
                smoltcp::socket::Socket::Tcp(t) if handle == s.handle && t.is_open() => {
                    t.abort();
                    true
                }
                _ => false,
            });
            if aborted {
                self.flush();
            }
        }
        let h = &mut self.hosts[s.host];
        if let Some(key) = h.socket_ports.remove(&s.handle) {
            if let Some(c) = h.used_ports.get_mut(&key) {
                *c -= 1;
                if *c == 0 {
                    h.used_ports.remove(&key);
                }
            }
            let removed = h.sockets.remove(s.handle);
            if let smoltcp::socket::Socket::Tcp(mut t) = removed {
                t.abort();
            }
        }
    }

    /// The addresses of a host.
    pub fn host_addresses(&self, host: usize) -> &[IpAddr] {
        &self.engine.topology().hosts[host].addresses
    }

    /// Inject a raw IP packet as if `host` had sent it (tests of the packet path).
    pub fn inject(&mut self, host: usize, packet: &[u8]) {
        self.engine
            .handle_from_host(self.now, host, PacketBuf::from_slice(packet));
        self.flush();
    }
}
