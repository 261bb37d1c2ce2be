//! The engine thread's fast-path helpers: pooled packet buffers (no allocation per
//! packet in the steady state) and userspace GRO for UDP on the way out (USO
//! super-datagrams: one `writev` for a run of datagrams of one flow).

use crate::wire::PacketBuf;
use crate::wire::offload;

/// Reusable packet buffers, so that the steady state allocates nothing per packet: each
/// packet read is copied into (or, for a super-segment, read straight into) a pooled
/// buffer, and the buffer comes back when the packet is written to its TUN device. Drops
/// inside the engine free their buffer; the pool then allocates a new one. Bounded: at
/// most [`POOL_SMALL`] small and [`POOL_LARGE`] large buffers wait in it.
pub(super) struct Pool {
    small: Vec<PacketBuf>,
    large: Vec<PacketBuf>,
}

/// Capacity of a small buffer: an MTU-sized packet with the full head- and tailroom.
const SMALL: usize = 2048;
/// Capacity of a large buffer: a 64 KiB super-segment with the full head- and tailroom.
pub(super) const LARGE: usize = PacketBuf::HEADROOM + 65536 + PacketBuf::TAILROOM;
/// Small buffers kept for reuse (1 MiB).
const POOL_SMALL: usize = 512;
/// Large buffers kept for reuse (1 MiB).
pub(super) const POOL_LARGE: usize = 16;

impl Pool {
    pub(super) fn new() -> Pool {
        Pool {
            small: Vec::with_capacity(POOL_SMALL),
            large: Vec::with_capacity(POOL_LARGE),
        }
    }

    /// A buffer holding a copy of `bytes`.
    pub(super) fn copy_of(&mut self, bytes: &[u8]) -> PacketBuf {
        if bytes.len() + PacketBuf::HEADROOM + PacketBuf::TAILROOM <= SMALL {
            let mut b = self
                .small
                .pop()
                .unwrap_or_else(|| PacketBuf::with_capacity(SMALL));
            b.set_contents(bytes);
            b
        } else {
            let mut b = self.large();
            b.set_contents(bytes);
            b
        }
    }

    pub(super) fn large(&mut self) -> PacketBuf {
        self.large
            .pop()
            .unwrap_or_else(|| PacketBuf::with_capacity(LARGE))
    }

    pub(super) fn put(&mut self, p: PacketBuf) {
        match p.capacity() {
            SMALL if self.small.len() < POOL_SMALL => self.small.push(p),
            LARGE if self.large.len() < POOL_LARGE => self.large.push(p),
            _ => {}
        }
    }
}

/// Most datagrams coalesced into one USO super-datagram (the kernel cuts at most 128).
const GRO_MAX: usize = 64;

/// Userspace GRO for UDP on the way out: consecutive datagrams to the same host of the
/// same flow and size (the last may be shorter) go to its TUN device as one USO
/// super-datagram, one `writev` instead of one per datagram; the receiving kernel cuts
/// it into the original datagrams (same headers, payloads and order; the IPv4
/// identification of all but the first becomes the first's plus its index, RFC 6864
/// leaves it meaningless for unfragmented datagrams). Used only while
/// [`Engine::passes_aggregates`] holds: the engine has already treated every datagram on
/// its own, so only the number of system calls changes.
pub(super) struct Gro {
    host: usize,
    first: PacketBuf,
    merged: Option<PacketBuf>,
    l4: usize,
    seg: usize,
    count: usize,
    /// A shorter datagram ended the run.
    closed: bool,
}

impl Gro {
    /// Start a run with `p` if it is a datagram that could be coalesced.
    pub(super) fn start(host: usize, p: PacketBuf) -> Result<Gro, PacketBuf> {
        let plain = p
            .offload()
            .is_none_or(|o| !o.is_gso() && o.csum_offset == 6);
        match offload::udp_coalescable(p.as_slice()) {
            Some((l4, seg)) if plain => Ok(Gro {
                host,
                first: p,
                merged: None,
                l4,
                seg,
                count: 1,
                closed: false,
            }),
            _ => Err(p),
        }
    }

    /// Add `p` to the run if it belongs to it; `Err(p)` if not.
    pub(super) fn join(
        &mut self,
        host: usize,
        p: PacketBuf,
        pool: &mut Pool,
    ) -> Result<(), PacketBuf> {
        if host != self.host || self.closed || self.count >= GRO_MAX {
            return Err(p);
        }
        if p.offload()
            .is_some_and(|o| o.is_gso() || o.csum_offset != 6)
        {
            return Err(p);
        }
        let Some((l4, len)) = offload::udp_coalescable(p.as_slice()) else {
            return Err(p);
        };
        let total = self.merged.as_ref().map_or(self.first.len(), |m| m.len());
        if l4 != self.l4
            || len > self.seg
            || total + len > 65535
            || !offload::udp_same_flow(self.first.as_slice(), p.as_slice(), l4)
        {
            return Err(p);
        }
        let merged = self.merged.get_or_insert_with(|| {
            let mut m = pool.large();
            m.set_contents(self.first.as_slice());
            m
        });
        if merged.append(&p.as_slice()[l4 + 8..]).is_err() {
            return Err(p);
        }
        self.count += 1;
        self.closed = len < self.seg;
        pool.put(p);
        Ok(())
    }

    /// The packet to write: the first datagram alone, or the super-datagram.
    pub(super) fn finish(self, pool: &mut Pool) -> (usize, PacketBuf, usize) {
        let Some(mut m) = self.merged else {
            return (self.host, self.first, 1);
        };
        let off = offload::finish_udp_coalesced(m.as_mut_slice(), self.l4, self.seg as u16);
        m.set_offload(off);
        pool.put(self.first);
        (self.host, m, self.count)
    }
}
