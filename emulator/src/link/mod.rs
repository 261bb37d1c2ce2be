//! Link impairments for ONE direction of an attachment (scenario `links:`, `up`/`down`):
//! MTU, loss (Bernoulli or Gilbert–Elliott bursts), a rate limiter with a bounded queue,
//! delay with jitter, reordering and duplication — a seeded, sans-IO netem (after
//! str0m-netem and smoltcp's fault injector).
//!
//! # Order of effects
//!
//! Each packet handed to [`Link::handle_packet`] at `now` goes through, in this order:
//!
//! 1. **MTU** ([`LinkConfig::mtu`]). A packet longer than the MTU is, if IPv6 or IPv4 with DF,
//!    handed back as [`Admit::TooBig`] (routers do not fragment those: RFC 8200 §5,
//!    RFC 1191); if IPv4 without DF, split into fragments per RFC 791 §3.2 (data in multiples
//!    of 8 bytes, header copied with only the "copied" options after the first fragment,
//!    total length, MF, offset and header checksum fixed; an already-fragmented packet keeps
//!    its offset base and its MF on the last piece), and each fragment continues alone
//!    through the steps below; anything else is dropped with [`DropReason::Mtu`].
//! 2. **Loss** ([`Loss`]): dropped with [`DropReason::LinkLoss`].
//! 3. **Rate** ([`LinkConfig::rate`]): serialization at `rate` bits per second. A packet
//!    starts serializing at `max(now, end of the previous packet's serialization)` and
//!    departs when it has been sent, `len·8/rate` later. A packet that cannot start at once
//!    waits in the queue; when [`LinkConfig::queue`] packets are already waiting, it is
//!    dropped with [`DropReason::QueueFull`] (tail drop, like a `pfifo` of that limit), so
//!    memory stays bounded. Without a rate the departure is `now`.
//! 4. **Delay, jitter, reordering.** With probability [`LinkConfig::reorder`] the packet is
//!    *reordered*: delivered at its departure time, without delay or jitter, overtaking
//!    whatever is still in flight — what netem's `reorder` does (it sends those packets
//!    immediately), so `delay: 20ms, reorder: 1%` reorders even without jitter. Every other
//!    packet is delivered at `departure + delay + U(−jitter, +jitter)` (uniform in
//!    nanoseconds, clamped to no earlier than the departure), and then no earlier than the
//!    previous non-reordered packet's delivery: jitter alone never reorders.
//! 5. **Duplication**: with probability [`LinkConfig::duplicate`] a copy is delivered at the
//!    same time, right after the original.
//!
//! [`Link::poll_transmit`] hands out packets whose delivery time has come, in delivery-time
//! order, ties in the order they were queued.
//!
//! # Randomness
//!
//! Loss, jitter, reordering and duplication draw from four independent streams forked from
//! the [`SimRng`] given to [`Link::new`], and only when their knob is non-zero: the same
//! seed and the same inputs give the same fates, and turning on duplication does not change
//! which packets are lost.
//!
//! # Accounting
//!
//! After draining (`in_flight() == 0`), [`LinkStats`] satisfies
//! `delivered + dropped() = offered + duplicated + fragments − fragmented`
//! (which is `delivered + dropped = offered + duplicated` when nothing was fragmented);
//! [`Admit::TooBig`] counts as an MTU drop.
//!
//! Memory: the rate limiter's queue is bounded by [`LinkConfig::queue`]; packets already
//! serialized and propagating are bounded only by what is offered during one delay.
//!
//! # Example
//!
//! ```
//! use emulator::link::{Admit, Link, LinkConfig, Loss};
//! use emulator::{rng::SimRng, PacketBuf};
//! use std::time::Duration;
//!
//! let config = LinkConfig {
//!     delay: Duration::from_millis(40),
//!     jitter: Duration::from_millis(10),
//!     loss: Loss::Bernoulli(0.02),
//!     ..LinkConfig::default()
//! };
//! let mut link = Link::new(config, SimRng::new(7));
//! # #[allow(clippy::disallowed_methods)]
//! let now = std::time::Instant::now(); // a driver's clock; the link never reads one
//! # let bytes = [0u8; 20];
//! if link.handle_packet(now, PacketBuf::from_slice(&bytes)) == Admit::Queued {
//!     let due = link.poll_timeout().unwrap();
//!     assert!(due >= now + Duration::from_millis(30));
//!     while let Some(pkt) = link.poll_transmit(due) {
//!         // deliver `pkt` to the next device
//!         # let _ = pkt;
//!     }
//! }
//! ```

mod fragment;
mod loss;
#[cfg(test)]
mod tests;

pub use loss::Loss;

use crate::rng::SimRng;
use crate::verdict::DropReason;
use crate::wire::PacketBuf;
use fragment::Split;
use loss::LossState;
use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};
use std::time::{Duration, Instant};

/// One direction's impairments (scenario `links: HOST: { up: …, down: … }`).
#[derive(Clone, Debug, PartialEq)]
pub struct LinkConfig {
    /// Constant propagation delay.
    pub delay: Duration,
    /// Delivery time varies uniformly in ±`jitter` around `delay` (never reorders by itself).
    pub jitter: Duration,
    /// Random loss model.
    pub loss: Loss,
    /// Probability (0–1) that a packet is delivered twice.
    pub duplicate: f64,
    /// Probability (0–1) that a packet skips delay, jitter and the in-order rule.
    pub reorder: f64,
    /// Serialization rate in bits per second; `None` = unlimited. `Some(0)` carries nothing
    /// (every packet is dropped with [`DropReason::QueueFull`]).
    pub rate: Option<u64>,
    /// Most packets waiting for serialization (only with a rate). Default 50.
    pub queue: usize,
    /// Largest packet in bytes; `None` = unlimited.
    pub mtu: Option<u16>,
}

impl Default for LinkConfig {
    /// A perfect link: no delay, no loss, no limits; queue 50 (used once a rate is set).
    fn default() -> Self {
        LinkConfig {
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            loss: Loss::None,
            duplicate: 0.0,
            reorder: 0.0,
            rate: None,
            queue: 50,
            mtu: None,
        }
    }
}

/// What became of a packet handed to [`Link::handle_packet`].
#[derive(Debug, PartialEq, Eq)]
pub enum Admit {
    /// It (or at least one of its fragments) is on its way.
    Queued,
    /// It (and every fragment of it) was dropped; the reason is counted.
    Dropped(DropReason),
    /// Larger than the MTU and must not be fragmented (IPv6, or IPv4 with DF). The packet
    /// comes back so that the caller can build the ICMP error from the right router address
    /// with [`wire::reply::icmp_error`](crate::wire::reply::icmp_error) and
    /// [`IcmpError::TooBig`](crate::wire::reply::IcmpError::TooBig) (RFC 1191, RFC 8201).
    TooBig {
        /// The link's MTU.
        mtu: u16,
        /// The refused packet.
        packet: PacketBuf,
    },
}

/// Counters, for reports. See the [module docs](self) for the accounting identity.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Packets handed to [`Link::handle_packet`].
    pub offered: u64,
    /// Packets handed out by [`Link::poll_transmit`] (each fragment and copy counts).
    pub delivered: u64,
    /// Bytes handed out by [`Link::poll_transmit`].
    pub delivered_bytes: u64,
    /// Dropped by the loss model ([`DropReason::LinkLoss`]).
    pub lost: u64,
    /// Dropped because the queue was full ([`DropReason::QueueFull`]).
    pub queue_full: u64,
    /// Refused for size ([`DropReason::Mtu`]), including those returned as
    /// [`Admit::TooBig`].
    pub mtu: u64,
    /// Of `mtu`: returned as [`Admit::TooBig`].
    pub too_big: u64,
    /// Extra copies made.
    pub duplicated: u64,
    /// Packets that took the reordering path.
    pub reordered: u64,
    /// Offered packets that were split into fragments.
    pub fragmented: u64,
    /// Fragments made from them.
    pub fragments: u64,
    /// Most packets ever waiting in the rate limiter's queue at once.
    pub queue_high_water: usize,
}

impl LinkStats {
    /// All drops.
    pub fn dropped(&self) -> u64 {
        self.lost + self.queue_full + self.mtu
    }

    /// Drops for one reason (zero for reasons a link never gives).
    pub fn dropped_by(&self, reason: DropReason) -> u64 {
        match reason {
            DropReason::LinkLoss => self.lost,
            DropReason::QueueFull => self.queue_full,
            DropReason::Mtu => self.mtu,
            _ => 0,
        }
    }
}

/// A packet in flight.
#[derive(Debug)]
struct Pending {
    at: Instant,
    seq: u64,
    pkt: PacketBuf,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending {
    /// Reversed, so that `BinaryHeap` (a max-heap) pops the earliest delivery first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// One direction of a link. See the [module docs](self).
#[derive(Debug)]
pub struct Link {
    config: LinkConfig,
    loss_rng: SimRng,
    jitter_rng: SimRng,
    reorder_rng: SimRng,
    dup_rng: SimRng,
    loss_state: LossState,
    /// When the transmitter finishes the last accepted packet.
    tx_free: Option<Instant>,
    /// Serialization start times of queued packets that have not started yet (ascending).
    waiting: VecDeque<Instant>,
    /// Delivery time of the last non-reordered packet (the in-order floor).
    last_delivery: Option<Instant>,
    in_flight: BinaryHeap<Pending>,
    seq: u64,
    stats: LinkStats,
}

impl Link {
    /// A link with nothing in flight.
    pub fn new(config: LinkConfig, rng: SimRng) -> Self {
        Link {
            config,
            loss_rng: rng.fork(1),
            jitter_rng: rng.fork(2),
            reorder_rng: rng.fork(3),
            dup_rng: rng.fork(4),
            loss_state: LossState::default(),
            tx_free: None,
            waiting: VecDeque::new(),
            last_delivery: None,
            in_flight: BinaryHeap::new(),
            seq: 0,
            stats: LinkStats::default(),
        }
    }

    /// Change the impairments from `now` on (scenario `link:` steps). Packets in flight keep
    /// their delivery times; packets already queued for serialization keep their place (a
    /// smaller `queue` only refuses new ones); new packets still never overtake earlier ones
    /// unless reordered. The Gilbert–Elliott state is kept while the loss model stays
    /// Gilbert–Elliott and reset to "good" otherwise.
    pub fn set_config(&mut self, now: Instant, config: LinkConfig) {
        self.prune_waiting(now);
        if !matches!(
            (&self.config.loss, &config.loss),
            (Loss::GilbertElliott { .. }, Loss::GilbertElliott { .. })
        ) {
            self.loss_state = LossState::default();
        }
        self.config = config;
    }

    /// The current configuration.
    pub fn config(&self) -> &LinkConfig {
        &self.config
    }

    /// The counters.
    pub fn stats(&self) -> &LinkStats {
        &self.stats
    }

    /// Packets (fragments and copies included) waiting for delivery.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Offer a packet to the link at `now`.
    pub fn handle_packet(&mut self, now: Instant, pkt: PacketBuf) -> Admit {
        self.stats.offered += 1;
        self.prune_waiting(now);
        let mtu = match self.config.mtu {
            Some(mtu) if pkt.len() > mtu as usize => mtu,
            _ => {
                return match self.admit_one(now, pkt) {
                    Ok(()) => Admit::Queued,
                    Err(r) => Admit::Dropped(r),
                };
            }
        };
        match fragment::split(pkt.as_slice(), mtu) {
            Split::TooBig => {
                self.stats.mtu += 1;
                self.stats.too_big += 1;
                Admit::TooBig { mtu, packet: pkt }
            }
            Split::Unfragmentable => {
                self.stats.mtu += 1;
                Admit::Dropped(DropReason::Mtu)
            }
            Split::Fragments(frags) => {
                self.stats.fragmented += 1;
                self.stats.fragments += frags.len() as u64;
                let mut queued = false;
                let mut first_drop = None;
                for f in frags {
                    match self.admit_one(now, f) {
                        Ok(()) => queued = true,
                        Err(r) => {
                            first_drop.get_or_insert(r);
                        }
                    }
                }
                match (queued, first_drop) {
                    (false, Some(r)) => Admit::Dropped(r),
                    _ => Admit::Queued,
                }
            }
        }
    }

    /// The next packet whose delivery time is at or before `now`.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<PacketBuf> {
        if self.in_flight.peek()?.at > now {
            return None;
        }
        let p = self.in_flight.pop()?;
        self.stats.delivered += 1;
        self.stats.delivered_bytes += p.pkt.len() as u64;
        Some(p.pkt)
    }

    /// The earliest pending delivery.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.in_flight.peek().map(|p| p.at)
    }

    fn prune_waiting(&mut self, now: Instant) {
        while self.waiting.front().is_some_and(|s| *s <= now) {
            self.waiting.pop_front();
        }
    }

    /// Steps 2–5 for one packet (or fragment).
    fn admit_one(&mut self, now: Instant, pkt: PacketBuf) -> Result<(), DropReason> {
        if self.loss_state.lost(&self.config.loss, &mut self.loss_rng) {
            self.stats.lost += 1;
            return Err(DropReason::LinkLoss);
        }
        let departure = match self.config.rate {
            None => now,
            Some(0) => {
                self.stats.queue_full += 1;
                return Err(DropReason::QueueFull);
            }
            Some(rate) => {
                let start = self.tx_free.map_or(now, |t| t.max(now));
                if start > now {
                    if self.waiting.len() >= self.config.queue {
                        self.stats.queue_full += 1;
                        return Err(DropReason::QueueFull);
                    }
                    self.waiting.push_back(start);
                    self.stats.queue_high_water =
                        self.stats.queue_high_water.max(self.waiting.len());
                }
                let end = later(start, serialization(pkt.len(), rate));
                self.tx_free = Some(end);
                end
            }
        };
        let reorder = self.config.reorder > 0.0 && self.reorder_rng.chance(self.config.reorder);
        let at = if reorder {
            self.stats.reordered += 1;
            departure
        } else {
            let at = later(departure, self.propagation());
            let at = self.last_delivery.map_or(at, |floor| at.max(floor));
            self.last_delivery = Some(at);
            at
        };
        let copy = (self.config.duplicate > 0.0 && self.dup_rng.chance(self.config.duplicate))
            .then(|| pkt.clone());
        self.push(at, pkt);
        if let Some(copy) = copy {
            self.stats.duplicated += 1;
            self.push(at, copy);
        }
        Ok(())
    }

    /// `delay + U(−jitter, +jitter)`, at least zero.
    fn propagation(&mut self) -> Duration {
        let delay = nanos(self.config.delay) as i128;
        let j = nanos(self.config.jitter);
        let offset = if j == 0 {
            0
        } else {
            self.jitter_rng.range_inclusive(0, 2 * j) as i128 - j as i128
        };
        Duration::from_nanos((delay + offset).max(0) as u64)
    }

    fn push(&mut self, at: Instant, pkt: PacketBuf) {
        let seq = self.seq;
        self.seq += 1;
        self.in_flight.push(Pending { at, seq, pkt });
    }
}

/// Link durations are capped at 2^60 ns (≈ 36 years) so that arithmetic cannot overflow.
const MAX_NANOS: u64 = 1 << 60;

fn nanos(d: Duration) -> u64 {
    d.as_nanos().min(MAX_NANOS as u128) as u64
}

/// Time to put `len` bytes on a wire of `rate` bit/s, rounded up to the nanosecond.
fn serialization(len: usize, rate: u64) -> Duration {
    let ns = (len as u128 * 8 * 1_000_000_000).div_ceil(rate as u128);
    Duration::from_nanos(ns.min(MAX_NANOS as u128) as u64)
}

/// `t + d`, saturating instead of panicking on overflow.
fn later(t: Instant, d: Duration) -> Instant {
    t.checked_add(d)
        .or_else(|| t.checked_add(Duration::from_nanos(MAX_NANOS)))
        .unwrap_or(t)
}
