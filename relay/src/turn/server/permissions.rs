//! Permissions and channels (RFC 8656 §9, §12): CreatePermission and ChannelBind, and the
//! peer-address checks (deny list) both make.

use super::*;

impl TurnServer {
    /// Checks a peer named by CreatePermission/ChannelBind: deny list (403), family (443).
    pub(super) fn check_peer(
        &mut self,
        ft: FiveTuple,
        peer: SocketAddr,
    ) -> Result<(), (u16, &'static str)> {
        // The deny list first: a refused peer gets 403 whatever its family.
        if self.peer_refused(peer) {
            self.stats.peer_denied += 1;
            self.events.push_back(TurnEvent::PeerDenied {
                client: ft.client,
                peer,
            });
            return Err((error::FORBIDDEN, "Forbidden"));
        }
        if peer.is_ipv4() != self.config.relay_addr.is_ipv4() {
            return Err((
                error::PEER_ADDRESS_FAMILY_MISMATCH,
                "Peer Address Family Mismatch",
            ));
        }
        Ok(())
    }

    pub(super) fn install_permission(&mut self, now: Instant, ft: FiveTuple, ip: IpAddr) {
        let Some(a) = self.allocations.get_mut(&ft) else {
            return;
        };
        let expires = now + PERMISSION_LIFETIME;
        match a.permissions.insert(ip, expires) {
            Some(old) => {
                self.timers.remove(&(old, TimerKey::Permission(ft, ip)));
            }
            None => self.events.push_back(TurnEvent::PermissionCreated {
                client: ft.client,
                peer: ip,
            }),
        }
        self.timers.insert((expires, TimerKey::Permission(ft, ip)));
    }

    /// RFC 8656 §10.2.
    pub(super) fn create_permission(
        &mut self,
        now: Instant,
        ft: FiveTuple,
        req: &Message,
    ) -> Outcome {
        if !self.allocations.contains_key(&ft) {
            return Err((error::ALLOCATION_MISMATCH, "Allocation Mismatch"));
        }
        let peers = attrs::peer_addresses(req).map_err(|()| (error::BAD_REQUEST, "Bad Request"))?;
        if peers.is_empty() {
            return Err((error::BAD_REQUEST, "Bad Request"));
        }
        for p in &peers {
            self.check_peer(ft, *p)?;
        }
        for p in peers {
            self.install_permission(now, ft, p.ip());
        }
        Ok(Vec::new())
    }

    /// RFC 8656 §12.1–12.3.
    pub(super) fn channel_bind(&mut self, now: Instant, ft: FiveTuple, req: &Message) -> Outcome {
        const BAD: (u16, &str) = (error::BAD_REQUEST, "Bad Request");
        if !self.allocations.contains_key(&ft) {
            return Err((error::ALLOCATION_MISMATCH, "Allocation Mismatch"));
        }
        // A TCP allocation has no channels (RFC 6062 §5.1: data goes on data connections).
        if self.is_tcp_allocation(&ft) {
            return Err(BAD);
        }
        let n = attrs::raw_value(req, kind::CHANNEL_NUMBER)
            .and_then(attrs::decode_channel_number)
            .filter(|n| {
                channel::is_valid_channel(*n)
                    || (self.config.legacy_channels && (0x5000..=0x7FFF).contains(n))
            })
            .ok_or(BAD)?;
        let peers = attrs::peer_addresses(req).map_err(|()| BAD)?;
        let [peer] = peers[..] else {
            return Err(BAD);
        };
        self.check_peer(ft, peer)?;
        let a = self.allocations.get_mut(&ft).ok_or(BAD)?;
        if a.channels.get(&n).is_some_and(|c| c.peer != peer)
            || a.by_peer.get(&peer).is_some_and(|m| *m != n)
        {
            return Err(BAD);
        }
        let expires = now + CHANNEL_LIFETIME;
        match a.channels.insert(n, Channel { peer, expires }) {
            Some(old) => {
                self.timers.remove(&(old.expires, TimerKey::Channel(ft, n)));
            }
            None => {
                a.by_peer.insert(peer, n);
                self.events.push_back(TurnEvent::ChannelBound {
                    client: ft.client,
                    channel: n,
                    peer,
                });
            }
        }
        self.timers.insert((expires, TimerKey::Channel(ft, n)));
        self.install_permission(now, ft, peer.ip());
        Ok(Vec::new())
    }
}
