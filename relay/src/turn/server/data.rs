//! Data relay (RFC 8656 §11, §12.5): Send indications and ChannelData from the client to
//! a peer, and a peer's datagrams back as Data indications or ChannelData, through the
//! permissions and channels of the allocation.

use super::*;

impl TurnServer {
    pub(super) fn relay_to_peer(
        &mut self,
        now: Instant,
        ft: FiveTuple,
        peer: SocketAddr,
        payload: &[u8],
    ) {
        let Some(a) = self.allocations.get(&ft) else {
            self.stats.dropped_no_allocation += 1;
            return;
        };
        // Send indications and ChannelData have no meaning on a TCP allocation (RFC 6062).
        if self.tcp.is_listener(&a.relayed) {
            self.stats.ignored += 1;
            return;
        }
        if self.peer_refused(peer) {
            self.stats.peer_denied += 1;
            self.events.push_back(TurnEvent::PeerDenied {
                client: ft.client,
                peer,
            });
            return;
        }
        if !a.has_permission(peer.ip(), now) {
            self.stats.dropped_no_permission += 1;
            return;
        }
        self.stats.to_peer_packets += 1;
        self.stats.to_peer_bytes += payload.len() as u64;
        self.transmits.push_back(Transmit {
            transport: Transport::Udp,
            from: a.relayed,
            to: peer,
            conn: None,
            data: payload.to_vec(),
        });
    }

    /// Send indication (RFC 8656 §11.2).
    pub(super) fn handle_send(&mut self, now: Instant, ft: FiveTuple, msg: &Message) {
        let peer = attrs::peer_addresses(msg)
            .ok()
            .and_then(|p| p.first().copied());
        let (Some(peer), Some(payload)) = (peer, attrs::raw_value(msg, kind::DATA)) else {
            self.stats.malformed += 1;
            return;
        };
        // Unknown comprehension-required attributes: the indication is discarded
        // (RFC 8489 §6.3.2). DONT-FRAGMENT counts as unknown: this server cannot set
        // DF (RFC 8656 §11.2; its Allocate got 420 for the same reason).
        if msg
            .attributes
            .iter()
            .any(|a| crate::stun::attr::is_comprehension_required(a.typ()) && !is_known(a.typ()))
        {
            self.stats.malformed += 1;
            return;
        }
        self.relay_to_peer(now, ft, peer, payload);
    }

    /// ChannelData from the client (RFC 8656 §12.5).
    pub(super) fn handle_channel_data(&mut self, now: Instant, ft: FiveTuple, data: &[u8]) {
        let Some((n, payload)) = channel::parse(data) else {
            self.stats.malformed += 1;
            return;
        };
        let Some(a) = self.allocations.get(&ft) else {
            self.stats.dropped_no_allocation += 1;
            return;
        };
        let Some(peer) = a
            .channels
            .get(&n)
            .filter(|c| c.expires > now)
            .map(|c| c.peer)
        else {
            self.stats.dropped_no_channel += 1;
            return;
        };
        self.relay_to_peer(now, ft, peer, payload);
    }

    /// A datagram from a peer on a relayed address (RFC 8656 §11.3, §12.6).
    pub(super) fn handle_peer_data(
        &mut self,
        now: Instant,
        ft: FiveTuple,
        peer: SocketAddr,
        payload: &[u8],
    ) {
        let Some(a) = self.allocations.get(&ft) else {
            self.stats.dropped_no_allocation += 1;
            return;
        };
        if !a.has_permission(peer.ip(), now) {
            self.stats.dropped_no_permission += 1;
            return;
        }
        let channel = a
            .by_peer
            .get(&peer)
            .copied()
            .filter(|n| a.channels.get(n).is_some_and(|c| c.expires > now));
        let data = match channel {
            Some(n) => match channel::emit_for(ft.transport, n, payload) {
                Some(d) => d,
                None => {
                    self.stats.malformed += 1;
                    return;
                }
            },
            None => {
                let tid = self.fresh_tid();
                let msg = Message::new(Class::Indication, method::DATA, tid)
                    .with(attrs::xor_address(kind::XOR_PEER_ADDRESS, peer, &tid))
                    .with(attrs::data(payload));
                if msg.buffer_len() > usize::from(u16::MAX) {
                    self.stats.malformed += 1;
                    return;
                }
                msg.emit()
            }
        };
        self.stats.to_client_packets += 1;
        self.stats.to_client_bytes += payload.len() as u64;
        self.send_to_client(ft, data);
    }
}
