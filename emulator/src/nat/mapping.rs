//! The life of a mapping (RFC 4787 §4.1, §4.3; RFC 5382 §5): lookup by either key with
//! lazy expiry, creation, refresh and TCP state, removal.

use super::events::ExpiryCause;
use super::table::{
    A16, Binding, TCP_FIN_IN, TCP_FIN_OUT, TCP_RST, TCP_SYN_IN, TCP_SYN_OUT, ip_of,
};
use super::{Nat, NatEvent, proto_of_slot};
use crate::verdict::DropReason;
use crate::wire::{Endpoint, tcp_flags};

impl Nat {
    /// Remove a mapping and release what it held.
    pub(super) fn remove_binding(&mut self, idx: u32, cause: ExpiryCause) {
        let b = self.table.remove(idx);
        self.release_port(&b);
        self.pair_release(&b.int_addr, b.v6());
        self.removed_event(&b, cause);
    }

    /// Remove every mapping (reboot, renumber), reporting each.
    pub(super) fn clear_all(&mut self, cause: ExpiryCause) {
        for idx in self.table.live_indices() {
            let b = self.table.slab[idx as usize].clone();
            self.removed_event(&b, cause);
        }
        self.table.clear();
        self.pairs.clear();
        self.frags.clear();
        self.reset_ports();
    }

    /// A live mapping by external endpoint; one whose time has come is removed first.
    #[inline]
    pub(super) fn lookup_ext(&mut self, t: u64, pk: u8, ext_idx: u16, port: u16) -> Option<u32> {
        let tag = match self.hint {
            Some((true, tag)) => self.hint.take().map(|_| tag),
            _ => None,
        };
        let idx = self.table.find_ext_tagged(tag, pk, ext_idx, port)?;
        if self.table.slab[idx as usize].expires <= t {
            self.remove_binding(idx, ExpiryCause::Timeout);
            return None;
        }
        Some(idx)
    }

    /// A live mapping by outbound key; one whose time has come is removed first.
    #[inline]
    pub(super) fn lookup_out(
        &mut self,
        t: u64,
        pk: u8,
        int: &A16,
        int_port: u16,
        rem: &A16,
        rem_port: u16,
    ) -> Option<u32> {
        let tag = match self.hint {
            Some((false, tag)) => self.hint.take().map(|_| tag),
            _ => None,
        };
        let idx = self
            .table
            .find_out_tagged(tag, pk, int, int_port, rem, rem_port)?;
        if self.table.slab[idx as usize].expires <= t {
            self.remove_binding(idx, ExpiryCause::Timeout);
            return None;
        }
        Some(idx)
    }

    /// Create a mapping (RFC 4787 §4.1) for an outbound packet.
    pub(super) fn create(
        &mut self,
        t: u64,
        pk: u8,
        int: A16,
        int_port: u16,
        rem: A16,
        rem_port: u16,
    ) -> Result<u32, DropReason> {
        // The table holds at most 2^24 - 1 bindings whatever `max_bindings` says.
        if self.table.len() >= self.config.max_bindings || self.table.full() {
            return Err(DropReason::BindingLimit);
        }
        let (ext_idx, ext_port) = self.allocate(pk, &int, int_port)?;
        let mut b = Binding {
            int_addr: int,
            rem_addr: rem,
            expires: 0,
            timer_at: 0,
            int_port,
            rem_port,
            ext_port,
            ext_idx,
            refreshes: 0,
            pkey: pk,
            tcp: 0,
            flags: 0,
        };
        b.expires = t.saturating_add(self.timeout_of(&b));
        let idx = self.table.insert(b);
        self.use_port(ext_idx, pk & 3, ext_port);
        self.pair_acquire(&int, pk & 4 != 0, ext_idx);
        self.stats.created += 1;
        let v6 = pk & 4 != 0;
        let ev = NatEvent::MappingCreated {
            proto: proto_of_slot(pk & 3),
            internal: Endpoint::new(ip_of(int, v6), int_port),
            external: Endpoint::new(self.pool.addrs[ext_idx as usize], ext_port),
            remote: Endpoint::new(ip_of(rem, v6), rem_port),
        };
        self.push_event(ev);
        Ok(idx)
    }

    /// Activity on a mapping: TCP state, then the timer (refresh, or shortening only).
    #[inline]
    pub(super) fn touch(&mut self, idx: u32, t: u64, refresh: bool, tcp: Option<(u8, bool)>) {
        let b = &self.table.slab[idx as usize];
        let before = self.timeout_of(b);
        let mut exp = b.expires;
        let mut after = before;
        if let Some((flags, out)) = tcp {
            let s = tcp_update(b.tcp, flags, out);
            self.table.slab[idx as usize].tcp = s;
            after = self.timeout_of(&self.table.slab[idx as usize]);
        }
        let cand = t.saturating_add(after);
        if refresh {
            exp = cand;
            let b = &mut self.table.slab[idx as usize];
            b.refreshes = b.refreshes.saturating_add(1);
        } else if after < before {
            exp = exp.min(cand);
        }
        self.table.set_expiry(idx, exp);
    }
}

/// TCP state after a segment with `flags` (`out`: outbound) — RFC 5382 §5.
pub(super) fn tcp_update(state: u8, flags: u8, out: bool) -> u8 {
    let mut s = state;
    if flags & tcp_flags::RST != 0 {
        return s | TCP_RST;
    }
    if flags & tcp_flags::SYN != 0 {
        if flags & tcp_flags::ACK == 0 && s & (TCP_FIN_OUT | TCP_FIN_IN | TCP_RST) != 0 {
            s = 0; // a new connection on a closed mapping
        }
        s |= if out { TCP_SYN_OUT } else { TCP_SYN_IN };
    }
    if flags & tcp_flags::FIN != 0 {
        s |= if out { TCP_FIN_OUT } else { TCP_FIN_IN };
    }
    s
}
