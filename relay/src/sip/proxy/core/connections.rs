//! Connections and where messages go (RFC 3261 §18): the open connections learnt from the
//! messages that arrive on them, connection reuse (§18.1.1), the flow to a registered
//! binding (RFC 5626 §5.3 flow reuse), and the response targets of §18.2.2 / RFC 3581 §4.

use super::*;

impl Proxy {
    /// A message arrived on a connection: it is open, and the newest one to its peer.
    pub(super) fn learn_connection(&mut self, flow: Flow) {
        if let Some(c) = flow.conn
            && flow.transport.is_reliable()
        {
            let peer = (flow.transport, flow.remote);
            self.conns.insert(c, peer);
            self.conn_by_peer.insert(peer, c);
        }
    }

    pub(super) fn local_for(&self, t: Transport) -> SocketAddr {
        self.config
            .listen
            .iter()
            .find(|(lt, _)| *lt == t)
            .or(self.config.listen.first())
            .map(|(_, a)| *a)
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 5060)))
    }

    /// Whether a flow's connection (if it names one) is still open. A reliable flow without
    /// a connection names an address: the driver reuses or opens a connection to it.
    pub(super) fn conn_open(&self, conn: Option<ConnId>) -> bool {
        conn.is_none_or(|c| self.conns.contains_key(&c))
    }

    /// Open connections, for reports and tests.
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// The flow to `addr` over `t`: a registered UA's own flow when one matches and is
    /// usable (its connection, the NAT binding it opened), else an open connection to
    /// `addr` (RFC 3261 §18.1.1: a connection to the destination is reused), else a new
    /// one from our address (for TCP the driver connects).
    pub(super) fn flow_to(&self, t: Transport, addr: SocketAddr) -> Flow {
        if let Some((_, b)) = self.registrar.bindings().find(|(_, b)| {
            b.path.remote == addr && b.path.transport == t && self.conn_open(b.path.conn)
        }) {
            return b.path;
        }
        let conn = if t.is_reliable() {
            self.conn_by_peer.get(&(t, addr)).copied()
        } else {
            None
        };
        Flow {
            transport: t,
            local: self.local_for(t),
            remote: addr,
            conn,
        }
    }

    /// Where requests for a binding go, `None` when it cannot be reached.
    ///
    /// - Registered over a connection that is still open: that connection, NATed or not
    ///   (RFC 5626 §5.3's flow reuse; what Kamailio's and OpenSIPS's TCP connection reuse
    ///   do without outbound): behind a NAT it is the only way in.
    /// - Registered over a connection that has closed: a NATed binding is unreachable (the
    ///   NAT lets no new connection in; such bindings are removed when the connection
    ///   closes, see `handle_closed`); a public one is reached at its Contact, over a new
    ///   connection when the Contact says TCP (RFC 3261 §18.1.1, §16.5).
    /// - Over UDP: the REGISTER's source when a NAT test hit (nathelper's `received`: the
    ///   Contact is unreachable behind the NAT); otherwise the Contact (RFC 3261 §16.5: the
    ///   Contact is the target), which need not be the REGISTER's source (a UA may register
    ///   from one port and answer on another).
    pub(super) fn binding_dest(&self, b: &crate::sip::registrar::Binding) -> Option<Flow> {
        if b.path.transport.is_reliable() {
            if self.conn_open(b.path.conn) {
                return Some(b.path);
            }
            if b.natted {
                return None;
            }
            return self.uri_dest(&b.uri);
        }
        if b.natted {
            return Some(b.path);
        }
        Some(self.uri_dest(&b.uri).unwrap_or(b.path))
    }

    pub(super) fn uri_dest(&self, u: &SipUri) -> Option<Flow> {
        let ip = host_ip(&u.host)?;
        let t = u
            .transport()
            .and_then(|t| Transport::from_token(&t))
            .unwrap_or(if u.secure {
                Transport::Tls
            } else {
                Transport::Udp
            });
        let port = u.port.unwrap_or(if u.secure { 5061 } else { 5060 });
        Some(self.flow_to(t, SocketAddr::new(ip, port)))
    }

    /// Where a response goes (RFC 3261 §18.2.2, RFC 3581 §4): over TCP/TLS the connection
    /// the request came on while it is open, else where its Via says ([`Proxy::via_dest`]).
    pub(super) fn response_dest(&self, via: &Via, server_flow: Flow) -> Flow {
        if server_flow.transport.is_reliable() && self.conn_open(server_flow.conn) {
            return server_flow;
        }
        let ip = server_flow.remote.ip();
        self.via_dest(via, server_flow.transport, server_flow.local, ip)
    }

    /// Where a response goes by its top Via alone (RFC 3261 §18.2.2, RFC 3581 §4).
    ///
    /// Over UDP: received (else the sent-by host) and rport (else the sent-by port). Over
    /// TCP/TLS, once the request's connection has closed (or for a response forwarded
    /// statelessly): an open connection to received:rport (the same peer — the NAT
    /// mapping of a UA that reconnected from the same port), else a new connection to
    /// received (else the sent-by host) and the sent-by port or the transport's default;
    /// RFC 3581 §4 applies rport to unreliable transports only. `fallback` stands in for
    /// a sent-by host that is a name without `received` (which we always add then).
    pub(super) fn via_dest(
        &self,
        via: &Via,
        t: Transport,
        local: SocketAddr,
        fallback: IpAddr,
    ) -> Flow {
        let ip = via
            .received()
            .and_then(host_ip)
            .or_else(|| host_ip(&via.host))
            .unwrap_or(fallback);
        let rport = match via.rport() {
            Some(Some(p)) => Some(p),
            _ => None,
        };
        let default_port = if t == Transport::Tls { 5061 } else { 5060 };
        let sent_by = SocketAddr::new(ip, via.port.unwrap_or(default_port));
        if !t.is_reliable() {
            return Flow {
                transport: t,
                local,
                remote: rport.map_or(sent_by, |p| SocketAddr::new(ip, p)),
                conn: None,
            };
        }
        let peer = rport.map(|p| SocketAddr::new(ip, p));
        if let Some(peer) = peer
            && let Some(&c) = self.conn_by_peer.get(&(t, peer))
        {
            return Flow {
                transport: t,
                local,
                remote: peer,
                conn: Some(c),
            };
        }
        Flow {
            transport: t,
            local,
            remote: sent_by,
            conn: self.conn_by_peer.get(&(t, sent_by)).copied(),
        }
    }

    /// Where a response forwarded statelessly goes (a 2xx retransmission after the INVITE
    /// transaction ended): by the Via alone; over UDP a registered UA's flow when one
    /// matches (its NAT binding, see `flow_to`).
    pub(super) fn next_hop_for_response(&self, via: &Via, from: Flow) -> Flow {
        let t = Transport::from_token(&via.transport).unwrap_or(Transport::Udp);
        let d = self.via_dest(via, t, self.local_for(t), from.remote.ip());
        if t.is_reliable() {
            d
        } else {
            self.flow_to(d.transport, d.remote)
        }
    }

    /// A connection closed. NATed bindings registered over it go (RFC 5626 §5.3: the flow
    /// has failed; the NAT lets no new connection in, so nothing could reach them — where
    /// Kamailio without outbound keeps such a binding and fails each request to it, we
    /// answer 480 at once and say why in an event). Public bindings stay: their Contact is
    /// reached over a new connection (RFC 3261 §18.1.1; a registration outlives the
    /// connection it came on).
    pub(super) fn handle_closed(&mut self, conn: ConnId) {
        if let Some(peer) = self.conns.remove(&conn)
            && self.conn_by_peer.get(&peer) == Some(&conn)
        {
            self.conn_by_peer.remove(&peer);
        }
        let dead: Vec<(String, String)> = self
            .registrar
            .bindings()
            .filter(|(_, b)| b.path.conn == Some(conn) && b.natted)
            .map(|(a, b)| (a.to_string(), b.uri.to_string()))
            .collect();
        for (aor, contact) in dead {
            self.remove_unreachable(aor, contact);
        }
    }
}
