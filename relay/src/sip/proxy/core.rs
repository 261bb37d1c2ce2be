//! The proxy core: request routing (RFC 3261 §16), transactions (§17), registrar (§10),
//! NAT handling and dialog tracking.

use super::config::*;
use super::media::{DynMediaControl, MediaSessions};
use super::transaction::{ClientTx, ServerTx, State, TIMERS, TimerIndex, TxId, slot};
use crate::rng::SplitMix64;
use crate::sip::headers::{NameAddr, Via};
use crate::sip::message::{Framing, Header, Limits, Message, Method};
use crate::sip::nat::{self, NatTests};
use crate::sip::registrar::{RegisterOutcome, Registrar, RemovalReason};
use crate::sip::transport::{ConnId, Flow, Transport};
use crate::sip::uri::{SipUri, Uri, host_ip, host_text};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

mod failure;

/// Counters for reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Messages received.
    pub received: u64,
    /// Messages sent (retransmissions included).
    pub sent: u64,
    /// Retransmissions sent by timers A, E, G.
    pub retransmissions: u64,
    /// Drops by reason.
    pub dropped: BTreeMap<DropReason, u64>,
}

#[derive(Debug, Clone)]
struct Dialog {
    from_tag: String,
    confirmed: bool,
    deadline: Instant,
}

/// The proxy.
#[derive(Debug)]
pub struct Proxy {
    config: ProxyConfig,
    registrar: Registrar,
    servers: BTreeMap<TxId, ServerTx>,
    server_keys: BTreeMap<String, TxId>,
    clients: BTreeMap<TxId, ClientTx>,
    client_keys: BTreeMap<(String, String), TxId>,
    timers: TimerIndex,
    next_id: u64,
    rng: SplitMix64,
    dialogs: BTreeMap<String, Dialog>,
    dialog_timers: BTreeSet<(Instant, String)>,
    keepalive_due: BTreeSet<(Instant, String, String)>,
    keepalive_branches: BTreeMap<String, (String, String)>,
    /// Open connections (learnt from the messages that arrive on them) and their peers.
    conns: BTreeMap<ConnId, (Transport, SocketAddr)>,
    /// The newest open connection to each peer (RFC 3261 §18.1.1, §18.2.2 reuse).
    conn_by_peer: BTreeMap<(Transport, SocketAddr), ConnId>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<ProxyEvent>,
    stats: ProxyStats,
    media: MediaSessions,
}

const MAGIC: &str = "z9hG4bK";

/// FNV-1a, for branch ids derived from incoming ones (RFC 3261 §16.11: deterministic).
fn fnv(parts: &[&str], seed: u64) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed;
    for p in parts {
        for b in p.bytes().chain([0xff]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x100_0000_01b3);
        }
    }
    h
}

impl Proxy {
    /// A proxy with an empty registrar that never touches SDP (no media relay).
    pub fn new(config: ProxyConfig) -> Proxy {
        Proxy::build(config, None)
    }

    /// A proxy that puts `control` into calls' SDP by `config.media` (see
    /// [`super::media`] for which messages, which calls, and what happens on refusal).
    pub fn with_media<M: DynMediaControl + 'static>(config: ProxyConfig, control: M) -> Proxy {
        Proxy::build(config, Some(Box::new(control)))
    }

    fn build(config: ProxyConfig, control: Option<Box<dyn DynMediaControl>>) -> Proxy {
        let rng = SplitMix64::new(config.seed ^ 0x9e37_79b9_7f4a_7c15);
        Proxy {
            media: MediaSessions::new(config.media, control),
            registrar: Registrar::new(config.registrar),
            config,
            servers: BTreeMap::new(),
            server_keys: BTreeMap::new(),
            clients: BTreeMap::new(),
            client_keys: BTreeMap::new(),
            timers: TimerIndex::default(),
            next_id: 1,
            rng,
            dialogs: BTreeMap::new(),
            dialog_timers: BTreeSet::new(),
            keepalive_due: BTreeSet::new(),
            keepalive_branches: BTreeMap::new(),
            conns: BTreeMap::new(),
            conn_by_peer: BTreeMap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: ProxyStats::default(),
        }
    }

    /// The registrar (bindings, lookups).
    pub fn registrar(&self) -> &Registrar {
        &self.registrar
    }

    /// Counters.
    pub fn stats(&self) -> &ProxyStats {
        &self.stats
    }

    /// Live server and client transactions.
    pub fn transaction_count(&self) -> (usize, usize) {
        (self.servers.len(), self.clients.len())
    }

    /// Live dialogs.
    pub fn dialog_count(&self) -> usize {
        self.dialogs.len()
    }

    /// Calls the media side keeps offer/answer state for (released with their dialogs).
    pub fn media_session_count(&self) -> usize {
        self.media.session_count()
    }

    /// Whether `remote` is the NAT path of a NATed registration binding.
    fn source_natted(&self, remote: SocketAddr) -> bool {
        self.registrar
            .bindings()
            .any(|(_, b)| b.natted && b.path.remote == remote)
    }

    /// Whether the sender of a response is behind a NAT: a NATed binding's path, or a
    /// private Contact when that test is configured.
    fn response_natted(&self, msg: &Message, from: SocketAddr) -> bool {
        let tests = NatTests(self.config.nat.tests.0 & NatTests::PRIVATE_CONTACT.0);
        self.source_natted(from) || (!tests.is_empty() && !nat::detect(msg, from, tests).is_empty())
    }

    /// Keepalive pings sent and not answered yet.
    pub fn pending_keepalives(&self) -> usize {
        self.keepalive_branches.len()
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<ProxyEvent> {
        self.events.pop_front()
    }

    /// When [`Proxy::handle_timeout`] is due next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.timers.first(),
            self.registrar.poll_timeout(),
            self.dialog_timers.first().map(|e| e.0),
            self.keepalive_due.first().map(|e| e.0),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn next_u64(&mut self) -> u64 {
        // Deterministic from the configured seed.
        self.rng.next_u64()
    }

    fn drop_msg(&mut self, reason: DropReason, from: SocketAddr) {
        *self.stats.dropped.entry(reason).or_default() += 1;
        self.events.push_back(ProxyEvent::Dropped { reason, from });
    }

    fn send(&mut self, flow: Flow, msg: &Message) -> Vec<u8> {
        // Content-Length is optional on UDP but mandatory on streams (RFC 3261 §18.3,
        // §20.14): a UDP request relayed to a TCP hop gets one.
        let bytes = if flow.transport.is_reliable() && !matches!(msg.content_length(), Ok(Some(_)))
        {
            let mut m = msg.clone();
            m.set("Content-Length", m.body().len().to_string());
            m.to_bytes()
        } else {
            msg.to_bytes()
        };
        self.events.push_back(ProxyEvent::MessageSent {
            flow,
            summary: msg.summary(),
            call_id: msg.call_id().unwrap_or_default().to_string(),
            cseq: msg
                .cseq()
                .map(|c| format!("{} {}", c.seq, c.method))
                .unwrap_or_default(),
        });
        self.stats.sent += 1;
        self.transmits.push_back(Transmit::on(flow, bytes.clone()));
        bytes
    }

    fn resend(&mut self, flow: Flow, bytes: Vec<u8>) {
        self.stats.sent += 1;
        self.stats.retransmissions += 1;
        self.transmits.push_back(Transmit::on(flow, bytes));
    }

    // ----- addresses -----

    fn local_for(&self, t: Transport) -> SocketAddr {
        self.config
            .listen
            .iter()
            .find(|(lt, _)| *lt == t)
            .or(self.config.listen.first())
            .map(|(_, a)| *a)
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 5060)))
    }

    fn is_our_ip(&self, ip: IpAddr) -> bool {
        self.config.listen.iter().any(|(_, a)| a.ip() == ip)
    }

    fn is_our_domain(&self, host: &str) -> bool {
        host_ip(host).is_some_and(|ip| self.is_our_ip(ip))
            || self
                .config
                .domains
                .iter()
                .any(|d| d.eq_ignore_ascii_case(host))
    }

    /// Whether a URI names this proxy (host and port), for Route processing (§16.4).
    fn is_us(&self, u: &SipUri) -> bool {
        let port = u.port.unwrap_or(5060);
        match host_ip(&u.host) {
            Some(ip) => self
                .config
                .listen
                .iter()
                .any(|(_, a)| a.ip() == ip && a.port() == port),
            None => self.is_our_domain(&u.host) && u.user.is_none(),
        }
    }

    /// Whether a flow's connection (if it names one) is still open. A reliable flow without
    /// a connection names an address: the driver reuses or opens a connection to it.
    fn conn_open(&self, conn: Option<ConnId>) -> bool {
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
    fn flow_to(&self, t: Transport, addr: SocketAddr) -> Flow {
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
    fn binding_dest(&self, b: &crate::sip::registrar::Binding) -> Option<Flow> {
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

    fn uri_dest(&self, u: &SipUri) -> Option<Flow> {
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
    fn response_dest(&self, via: &Via, server_flow: Flow) -> Flow {
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
    fn via_dest(&self, via: &Via, t: Transport, local: SocketAddr, fallback: IpAddr) -> Flow {
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

    // ----- input -----

    /// A message, a closed connection or a transport error from the driver.
    pub fn handle_input(&mut self, now: Instant, input: Input) {
        match input {
            Input::Message { flow, bytes } => self.handle_message(now, flow, &bytes),
            Input::Closed(conn) => self.handle_closed(conn),
            Input::TransportError { flow, bytes } => self.handle_transport_error(now, flow, &bytes),
        }
    }

    /// A connection closed. NATed bindings registered over it go (RFC 5626 §5.3: the flow
    /// has failed; the NAT lets no new connection in, so nothing could reach them — where
    /// Kamailio without outbound keeps such a binding and fails each request to it, we
    /// answer 480 at once and say why in an event). Public bindings stay: their Contact is
    /// reached over a new connection (RFC 3261 §18.1.1; a registration outlives the
    /// connection it came on).
    fn handle_closed(&mut self, conn: ConnId) {
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

    /// Removes a binding found unreachable — its NAT path closed, its keepalives missed
    /// or failed at the transport — and reports it.
    fn remove_unreachable(&mut self, aor: String, contact: String) {
        if self.registrar.remove(&aor, &contact) {
            self.events.push_back(ProxyEvent::RegistrationRemoved {
                aor,
                contact,
                reason: RemovalReason::Unreachable,
            });
        }
    }

    fn handle_message(&mut self, now: Instant, flow: Flow, bytes: &[u8]) {
        self.stats.received += 1;
        if let Some(c) = flow.conn
            && flow.transport.is_reliable()
        {
            let peer = (flow.transport, flow.remote);
            self.conns.insert(c, peer);
            self.conn_by_peer.insert(peer, c);
        }
        let framing = if flow.transport.is_reliable() {
            Framing::Stream
        } else {
            Framing::Datagram
        };
        let msg = match Message::parse_with(bytes, &Limits::default(), framing) {
            Ok(m) => m,
            Err(e) => {
                self.reject_malformed(flow, bytes, &e);
                return;
            }
        };
        self.events.push_back(ProxyEvent::MessageReceived {
            flow,
            summary: msg.summary(),
            call_id: msg.call_id().unwrap_or_default().to_string(),
            cseq: msg
                .cseq()
                .map(|c| format!("{} {}", c.seq, c.method))
                .unwrap_or_default(),
        });
        if msg.is_request() {
            self.handle_request(now, flow, msg);
        } else {
            self.handle_response(now, flow, msg);
        }
    }

    /// A request that fails the checks is answered 400 (505 for another version) when a
    /// response can be addressed (RFC 3261 §16.3); anything else is dropped.
    fn reject_malformed(&mut self, flow: Flow, bytes: &[u8], e: &crate::sip::ParseError) {
        let lenient = Limits::default();
        let answered = (|| {
            let text = std::str::from_utf8(bytes).ok()?;
            let head = text.split("\r\n\r\n").next()?;
            let mut lines = head.split("\r\n");
            let start = lines.next()?.trim_start_matches(['\r', '\n']);
            if start.starts_with("SIP/") || start.starts_with("ACK ") {
                return None;
            }
            // Copy the fields a response needs, as they are.
            let mut req = Message::request(Method::Options, Uri::Other("x:x".into()));
            for l in lines {
                if let Some((n, v)) = l.split_once(':') {
                    let h = Header::new(n.trim(), v.trim());
                    if h.is("Via") || h.is("From") || h.is("To") || h.is("Call-ID") || h.is("CSeq")
                    {
                        req.push_header(h);
                    }
                }
            }
            let mut via = req.top_via().ok()?;
            let _ = lenient;
            // received/rport as for any request (RFC 3261 §18.2.1, RFC 3581 §4)
            via.params
                .set("received", Some(host_text(flow.remote.ip())));
            if via.rport().is_some() {
                via.params
                    .set("rport", Some(flow.remote.port().to_string()));
            }
            req.set_front("Via", via.to_string());
            let (code, reason) = match e {
                crate::sip::ParseError::Version(_) => (505, "Version Not Supported"),
                _ => (400, "Bad Request"),
            };
            let resp = Message::response_to(&req, code, reason, None);
            Some((self.response_dest(&via, flow), resp))
        })();
        match answered {
            Some((dest, resp)) => {
                self.send(dest, &resp);
            }
            None => self.drop_msg(DropReason::Unparseable, flow.remote),
        }
    }

    fn server_key(msg: &Message, via: &Via, method: &str) -> String {
        match via.branch() {
            Some(b) if b.starts_with(MAGIC) => {
                format!("{b}|{}:{:?}|{method}", via.host, via.port)
            }
            _ => {
                // RFC 2543 matching (§17.2.3): Request-URI, tags, Call-ID, CSeq, top Via.
                let from_tag = msg.from().ok().and_then(|f| f.tag().map(str::to_string));
                format!(
                    "2543|{}|{:?}|{}|{}|{via}|{method}",
                    msg.request_uri().map(|u| u.to_string()).unwrap_or_default(),
                    from_tag,
                    msg.call_id().unwrap_or_default(),
                    msg.cseq().map(|c| c.seq).unwrap_or_default(),
                )
            }
        }
    }

    // ----- requests -----

    fn handle_request(&mut self, now: Instant, flow: Flow, mut msg: Message) {
        // received / rport on the top Via (RFC 3261 §18.2.1, RFC 3581 §4); forced when a
        // NAT test hits (nathelper's force_rport).
        let natted = if self.config.nat.tests.is_empty() {
            NatTests::default()
        } else {
            nat::detect(&msg, flow.remote, self.config.nat.tests)
        };
        let Ok(mut via) = msg.top_via() else {
            self.drop_msg(DropReason::Unanswerable, flow.remote);
            return;
        };
        if host_ip(&via.host) != Some(flow.remote.ip()) || !natted.is_empty() {
            via.params
                .set("received", Some(host_text(flow.remote.ip())));
        }
        if via.rport().is_some() || !natted.is_empty() {
            via.params
                .set("rport", Some(flow.remote.port().to_string()));
        }
        msg.set_front("Via", via.to_string());
        let method = msg.method().cloned().unwrap_or(Method::Options);
        if method == Method::Ack {
            self.handle_ack(now, flow, msg, &via);
            return;
        }
        let key = Self::server_key(&msg, &via, method.as_str());
        if let Some(&id) = self.server_keys.get(&key) {
            // a retransmission: answer with the last response, if any (§17.2.1, §17.2.2)
            let last = self.servers.get(&id).and_then(|s| s.last_response.clone());
            if let Some((f, b)) = last {
                self.resend(f, b);
            }
            self.drop_msg(DropReason::Retransmission, flow.remote);
            return;
        }
        let id = self.new_id();
        let invite = method == Method::Invite;
        let mut st = ServerTx {
            key: key.clone(),
            invite,
            flow,
            request: msg.clone(),
            state: State::Proceeding,
            last_response: None,
            client: None,
            g_interval: self.config.timers.t1,
            timers: [None; TIMERS],
        };
        if invite {
            // 100 Trying at once (§16.2 step... §17.2.1): stops the caller's Timer A.
            let trying = Message::response_to(&msg, 100, "Trying", None);
            let dest = self.response_dest(&via, flow);
            let b = self.send(dest, &trying);
            st.last_response = Some((dest, b));
        }
        self.servers.insert(id, st);
        self.server_keys.insert(key, id);

        if method == Method::Cancel {
            self.handle_cancel(now, id, &msg, &via);
            return;
        }
        // Max-Forwards (§16.3 step 3).
        let mf = msg.max_forwards().ok().flatten();
        if mf == Some(0) {
            self.respond(now, id, 483, "Too Many Hops");
            return;
        }
        // Route processing (§16.4): a top Route naming us is removed.
        if let Ok(routes) = msg.name_addrs("Route")
            && let Some(first) = routes.first()
            && first.uri.sip().is_some_and(|u| self.is_us(u))
        {
            msg.pop_front("Route");
        }
        let ruri = msg
            .request_uri()
            .cloned()
            .unwrap_or(Uri::Other(String::new()));
        let has_route = msg.values("Route").next().is_some();
        let ours = ruri.sip().is_some_and(|u| self.is_our_domain(&u.host));
        if !has_route && ours && method == Method::Register {
            self.handle_register(now, id, &msg, flow, !natted.is_empty());
            return;
        }
        if !has_route
            && method == Method::Options
            && ruri.sip().is_some_and(|u| u.user.is_none() && ours)
        {
            self.respond(now, id, 200, "OK");
            return;
        }
        // Target (§16.5).
        let target = self.target(&mut msg, has_route, ours, &ruri);
        let (dest, natted_target) = match target {
            Ok(t) => t,
            Err((code, reason)) => {
                self.respond(now, id, code, reason);
                return;
            }
        };
        self.note_nat(&mut msg, flow, natted);
        let media_natted = self.media.active()
            && (!natted.is_empty() || natted_target || self.source_natted(flow.remote));
        if let Err((code, reason)) = self
            .media
            .on_request(&mut msg, media_natted, &mut self.events)
        {
            self.respond(now, id, code, reason);
            return;
        }
        self.track_request_dialog(now, &msg, &method);
        self.forward_request(now, id, msg, dest, natted_target, mf);
    }

    fn new_id(&mut self) -> TxId {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn note_nat(&mut self, msg: &mut Message, flow: Flow, natted: NatTests) {
        if natted.is_empty() {
            return;
        }
        let fixed =
            self.config.nat.fix_contact && nat::fix_contact(msg, flow.remote, flow.transport);
        self.events.push_back(ProxyEvent::NatDetected {
            source: flow.remote,
            tests: natted.0,
            contact_fixed: fixed,
        });
    }

    /// Where to send the request (and its Request-URI rewritten for a registered target).
    #[allow(clippy::type_complexity)]
    fn target(
        &self,
        msg: &mut Message,
        has_route: bool,
        ours: bool,
        ruri: &Uri,
    ) -> Result<(Flow, bool), (u16, &'static str)> {
        if has_route {
            let top = msg
                .name_addrs("Route")
                .ok()
                .and_then(|r| r.into_iter().next())
                .ok_or((400, "Bad Route"))?;
            let u = top.uri.sip().ok_or((416, "Unsupported URI Scheme"))?;
            return self
                .uri_dest(u)
                .map(|f| (f, false))
                .ok_or((404, "Not Found"));
        }
        let Some(u) = ruri.sip() else {
            return Err((416, "Unsupported URI Scheme"));
        };
        if let Some(orig) = nat::restore_original(ruri) {
            // a fixed Contact (nat.rs): go to the public address, restore what the UA wrote
            let dest = self.uri_dest(u).ok_or((404, "Not Found"))?;
            let natted = self
                .registrar
                .bindings()
                .any(|(_, b)| b.path.remote == dest.remote && b.natted);
            msg.set_request_uri(orig);
            return Ok((dest, natted));
        }
        if let Some((_, b)) = self.registrar.find_by_contact(&u.to_string()) {
            let dest = self
                .binding_dest(b)
                .ok_or((480, "Temporarily Unavailable"))?;
            return Ok((dest, b.natted));
        }
        if ours && u.user.is_some() {
            let aor = u.aor();
            let mut bindings = self.registrar.lookup(&aor);
            let mut known = self.registrar.knows(&aor);
            if bindings.is_empty() {
                // the same user registered under another of our names (IP vs domain)
                let user = u.user.as_deref().unwrap_or_default();
                if let Some((a, _)) = self.registrar.bindings().find(|(a, _)| {
                    a.split_once('@')
                        .is_some_and(|(au, h)| au == user && self.is_our_domain(h))
                }) {
                    bindings = self.registrar.lookup(a);
                    known = true;
                }
            }
            let Some(b) = bindings.last() else {
                return Err(if known {
                    (480, "Temporarily Unavailable")
                } else {
                    (404, "Not Found")
                });
            };
            let dest = self
                .binding_dest(b)
                .ok_or((480, "Temporarily Unavailable"))?;
            msg.set_request_uri(Uri::Sip(b.uri.clone()));
            return Ok((dest, b.natted));
        }
        if ours {
            return Err((404, "Not Found"));
        }
        self.uri_dest(u)
            .map(|f| (f, false))
            .ok_or((404, "Not Found"))
    }

    fn forward_request(
        &mut self,
        now: Instant,
        server: TxId,
        mut msg: Message,
        dest: Flow,
        natted_target: bool,
        mf: Option<u8>,
    ) {
        let method = msg.method().cloned().unwrap_or(Method::Options);
        msg.set("Max-Forwards", mf.map_or(70, |m| m - 1).to_string());
        let initial = msg
            .to()
            .ok()
            .and_then(|t| t.tag().map(str::to_string))
            .is_none();
        if self.config.record_route
            && initial
            && matches!(method, Method::Invite | Method::Subscribe)
        {
            let local = self.local_for(dest.transport);
            let mut rr = SipUri::new(None, local.ip(), Some(local.port()));
            if dest.transport != Transport::Udp {
                rr.params.set(
                    "transport",
                    Some(dest.transport.as_str().to_ascii_lowercase()),
                );
            }
            rr.params.set("lr", None);
            msg.push_front("Record-Route", format!("<{rr}>"));
        }
        let skey = self
            .servers
            .get(&server)
            .map(|s| s.key.clone())
            .unwrap_or_default();
        let branch = format!("{MAGIC}{:016x}", fnv(&[&skey], self.config.seed));
        self.push_our_via(&mut msg, dest, &branch);
        let id = self.new_id();
        let bytes = self.send(dest, &msg);
        let invite = method == Method::Invite;
        let t1 = self.config.timers.t1;
        let mut ct = ClientTx {
            branch: branch.clone(),
            method: method.as_str().to_string(),
            request: msg,
            bytes,
            flow: dest,
            state: State::Calling,
            interval: t1,
            server: Some(server),
            cancel_pending: false,
            ack: None,
            natted_target,
            timers: [None; TIMERS],
        };
        let reliable = dest.transport.is_reliable();
        let (retx, timeout) = if invite {
            (Timer::TimerA, Timer::TimerB)
        } else {
            (Timer::TimerE, Timer::TimerF)
        };
        if !reliable {
            self.timers.arm(&mut ct.timers, id, retx, now + t1);
        }
        self.timers.arm(&mut ct.timers, id, timeout, now + 64 * t1);
        if invite {
            // §16.6 step 11: Timer C for the ringing phase
            let c = self.config.timers.c;
            self.timers.arm(&mut ct.timers, id, Timer::TimerC, now + c);
        }
        self.clients.insert(id, ct);
        self.client_keys
            .insert((branch, method.as_str().to_string()), id);
        if let Some(s) = self.servers.get_mut(&server) {
            s.client = Some(id);
        }
    }

    fn push_our_via(&self, msg: &mut Message, dest: Flow, branch: &str) {
        let local = self.local_for(dest.transport);
        let via = Via::new(
            dest.transport.as_str(),
            host_text(local.ip()),
            Some(local.port()),
            branch,
        );
        msg.push_front("Via", via.to_string());
    }

    /// Answer a server transaction ourselves.
    fn respond(&mut self, now: Instant, id: TxId, code: u16, reason: &str) {
        let Some(st) = self.servers.get(&id) else {
            return;
        };
        let tag = (code > 100).then(|| format!("{:x}", fnv(&[&st.key], self.config.seed)));
        let resp = Message::response_to(&st.request, code, reason, tag.as_deref());
        self.send_upstream(now, id, resp);
    }

    fn respond_with(&mut self, now: Instant, id: TxId, resp: Message) {
        self.send_upstream(now, id, resp);
    }

    /// Send a response through server transaction `id` and move it on (§17.2.1, §17.2.2).
    fn send_upstream(&mut self, now: Instant, id: TxId, resp: Message) {
        let Some(st) = self.servers.get(&id) else {
            return;
        };
        let Ok(via) = resp.top_via() else { return };
        let dest = self.response_dest(&via, st.flow);
        let code = resp.status().unwrap_or(500);
        let bytes = self.send(dest, &resp);
        let t = self.config.timers;
        let Some(st) = self.servers.get_mut(&id) else {
            return;
        };
        st.last_response = Some((dest, bytes));
        if code < 200 {
            return;
        }
        let reliable = st.flow.transport.is_reliable();
        if st.invite {
            if (200..300).contains(&code) {
                // 2xx: the transaction ends; the UAs retransmit end to end (§17.2.1)
                let key = st.key.clone();
                self.servers.remove(&id);
                self.server_keys.remove(&key);
                return;
            }
            st.state = State::Completed;
            if !reliable {
                self.timers
                    .arm(&mut st.timers, id, Timer::TimerG, now + t.t1);
            }
            self.timers
                .arm(&mut st.timers, id, Timer::TimerH, now + 64 * t.t1);
        } else {
            st.state = State::Completed;
            let j = if reliable { Duration::ZERO } else { 64 * t.t1 };
            self.timers.arm(&mut st.timers, id, Timer::TimerJ, now + j);
        }
    }

    fn handle_register(&mut self, now: Instant, id: TxId, msg: &Message, flow: Flow, natted: bool) {
        let outcome = self.registrar.handle_register(now, msg, flow, natted);
        let st_req = self.servers.get(&id).map(|s| s.request.clone());
        let Some(req) = st_req else { return };
        match outcome {
            RegisterOutcome::Ok {
                bindings,
                added,
                removed,
            } => {
                let mut resp = Message::response_to(&req, 200, "OK", Some("reg"));
                let body_len = resp.headers().len() - 1;
                for (i, (c, left)) in bindings.into_iter().enumerate() {
                    let mut c = c;
                    c.params.set("expires", Some(left.to_string()));
                    resp.insert_header(body_len + i, Header::new("Contact", c.to_string()));
                }
                for (aor, contact, expires) in added {
                    if natted && let Some(k) = self.config.nat.keepalive {
                        let spread = self.next_u64() % (k.interval.as_millis().max(1) as u64);
                        self.keepalive_due.insert((
                            now + Duration::from_millis(spread),
                            aor.clone(),
                            contact.clone(),
                        ));
                    }
                    self.events.push_back(ProxyEvent::Registered {
                        aor,
                        contact,
                        path: flow,
                        expires,
                        natted,
                    });
                }
                for (aor, contact) in removed {
                    self.events.push_back(ProxyEvent::RegistrationRemoved {
                        aor,
                        contact,
                        reason: RemovalReason::Unregistered,
                    });
                }
                self.respond_with(now, id, resp);
            }
            RegisterOutcome::IntervalTooBrief(min) => {
                let mut resp = Message::response_to(&req, 423, "Interval Too Brief", Some("reg"));
                let n = resp.headers().len() - 1;
                resp.insert_header(n, Header::new("Min-Expires", min.to_string()));
                self.respond_with(now, id, resp);
            }
            RegisterOutcome::BadRequest(_) => self.respond(now, id, 400, "Bad Request"),
        }
    }

    fn handle_cancel(&mut self, now: Instant, id: TxId, msg: &Message, via: &Via) {
        let key = Self::server_key(msg, via, "INVITE");
        let Some(&inv) = self.server_keys.get(&key) else {
            self.respond(now, id, 481, "Call/Transaction Does Not Exist");
            return;
        };
        self.respond(now, id, 200, "OK");
        let client = self.servers.get(&inv).and_then(|s| s.client);
        let Some(cid) = client else { return };
        let state = self.clients.get(&cid).map(|c| c.state);
        match state {
            Some(State::Proceeding) => self.send_cancel(now, cid),
            Some(State::Calling) => {
                if let Some(c) = self.clients.get_mut(&cid) {
                    c.cancel_pending = true; // §9.1: wait for a provisional response
                }
            }
            _ => {}
        }
    }

    /// CANCEL for client INVITE `cid` (§9.1): same Request-URI, Call-ID, To, From, Route,
    /// CSeq number, and a single Via equal to the INVITE's.
    fn send_cancel(&mut self, now: Instant, cid: TxId) {
        let Some(c) = self.clients.get(&cid) else {
            return;
        };
        let inv = &c.request;
        let Some(uri) = inv.request_uri().cloned() else {
            return;
        };
        let mut cancel = Message::request(Method::Cancel, uri);
        if let Some(v) = inv.values("Via").next() {
            cancel.push_header(Header::new("Via", v));
        }
        for name in ["Route", "From", "To", "Call-ID"] {
            for h in inv.headers().iter().filter(|h| h.is(name)) {
                cancel.push_header(h.clone());
            }
        }
        let seq = inv.cseq().map(|c| c.seq).unwrap_or(1);
        cancel.push_header(Header::new("CSeq", format!("{seq} CANCEL")));
        cancel.push_header(Header::new("Max-Forwards", "70"));
        cancel.push_header(Header::new("Content-Length", "0"));
        let (flow, branch) = (c.flow, c.branch.clone());
        let bytes = self.send(flow, &cancel);
        let id = self.new_id();
        let t1 = self.config.timers.t1;
        let mut ct = ClientTx {
            branch: branch.clone(),
            method: "CANCEL".into(),
            request: cancel,
            bytes,
            flow,
            state: State::Calling,
            interval: t1,
            server: None,
            cancel_pending: false,
            ack: None,
            natted_target: false,
            timers: [None; TIMERS],
        };
        if !flow.transport.is_reliable() {
            self.timers.arm(&mut ct.timers, id, Timer::TimerE, now + t1);
        }
        self.timers
            .arm(&mut ct.timers, id, Timer::TimerF, now + 64 * t1);
        self.clients.insert(id, ct);
        self.client_keys.insert((branch, "CANCEL".into()), id);
    }

    fn handle_ack(&mut self, now: Instant, flow: Flow, mut msg: Message, via: &Via) {
        let key = Self::server_key(&msg, via, "INVITE");
        if let Some(&id) = self.server_keys.get(&key) {
            // ACK for a non-2xx final response: absorbed (§17.2.1)
            let t4 = self.config.timers.t4;
            if let Some(st) = self.servers.get_mut(&id)
                && st.state == State::Completed
            {
                st.state = State::Confirmed;
                let i = if st.flow.transport.is_reliable() {
                    Duration::ZERO
                } else {
                    t4
                };
                st.timers[slot(Timer::TimerG)] = None;
                st.timers[slot(Timer::TimerH)] = None;
                self.timers.arm(&mut st.timers, id, Timer::TimerI, now + i);
            } else {
                self.drop_msg(DropReason::Retransmission, flow.remote);
            }
            return;
        }
        // ACK for a 2xx: routed end to end, statelessly (§16.11 branch derivation).
        let mf = msg.max_forwards().ok().flatten();
        if mf == Some(0) {
            self.drop_msg(DropReason::UnroutableAck, flow.remote);
            return;
        }
        if let Ok(routes) = msg.name_addrs("Route")
            && let Some(first) = routes.first()
            && first.uri.sip().is_some_and(|u| self.is_us(u))
        {
            msg.pop_front("Route");
        }
        let ruri = msg
            .request_uri()
            .cloned()
            .unwrap_or(Uri::Other(String::new()));
        let has_route = msg.values("Route").next().is_some();
        let ours = ruri.sip().is_some_and(|u| self.is_our_domain(&u.host));
        let Ok((dest, _)) = self.target(&mut msg, has_route, ours, &ruri) else {
            self.drop_msg(DropReason::UnroutableAck, flow.remote);
            return;
        };
        msg.set("Max-Forwards", mf.map_or(70, |m| m - 1).to_string());
        // an answer in the ACK (offerless INVITE); an ACK is never refused
        let _ = self.media.on_request(&mut msg, false, &mut self.events);
        let branch = format!(
            "{MAGIC}{:016x}",
            fnv(&[via.branch().unwrap_or_default(), "ACK"], self.config.seed)
        );
        self.push_our_via(&mut msg, dest, &branch);
        self.send(dest, &msg);
    }

    // ----- responses -----

    fn handle_response(&mut self, now: Instant, flow: Flow, mut msg: Message) {
        let Ok(top) = msg.top_via() else { return };
        let branch = top.branch().unwrap_or_default().to_string();
        if let Some((aor, contact)) = self.keepalive_branches.remove(&branch) {
            if let Some(b) = self.registrar.binding_mut(&aor, &contact) {
                b.missed_keepalives = 0;
            }
            return;
        }
        let method = msg.cseq().map(|c| c.method).unwrap_or_default();
        let code = msg.status().unwrap_or(500);
        let Some(&cid) = self.client_keys.get(&(branch.clone(), method.clone())) else {
            // a 2xx retransmission after the INVITE transaction ended: forward statelessly
            let ours = host_ip(&top.host).is_some_and(|ip| self.is_our_ip(ip));
            if ours && method == "INVITE" && (200..300).contains(&code) {
                msg.pop_front("Via");
                if let Ok(next) = msg.top_via() {
                    let dest = self.next_hop_for_response(&next, flow);
                    self.fix_response_contact(&mut msg, flow, false);
                    let natted = self.media.active() && self.response_natted(&msg, flow.remote);
                    self.media.on_response(&mut msg, natted, &mut self.events);
                    self.send(dest, &msg);
                    return;
                }
            }
            let reason = if ours {
                DropReason::UnmatchedResponse
            } else {
                DropReason::NotOurVia
            };
            self.drop_msg(reason, flow.remote);
            return;
        };
        let t = self.config.timers;
        // A response to a request we forwarded must name the next hop below our Via
        // (§16.7 step 3: with none left it was meant for us, and a final one would strand
        // the server transaction): drop it before it changes the transaction, which then
        // ends by its timers.
        let forwarded = self.clients.get(&cid).is_some_and(|c| c.server.is_some());
        if forwarded && msg.via().map_or(0, |v| v.len()) < 2 {
            self.drop_msg(DropReason::Unanswerable, flow.remote);
            return;
        }
        let Some(c) = self.clients.get_mut(&cid) else {
            return;
        };
        let invite = c.method == "INVITE";
        let (server, natted_target) = (c.server, c.natted_target);
        match c.state {
            State::Completed | State::Confirmed => {
                // a retransmitted final response: resend our ACK (§17.1.1.2), absorb
                if let Some(ack) = c.ack.clone() {
                    let f = c.flow;
                    self.resend(f, ack);
                }
                self.drop_msg(DropReason::Retransmission, flow.remote);
                return;
            }
            State::Calling | State::Proceeding => {}
        }
        if code < 200 {
            c.state = State::Proceeding;
            c.timers[slot(Timer::TimerA)] = None;
            if invite {
                // Timer B bounds the Calling state only (§17.1.1.2); from here on Timer C
                // does, restarted by every provisional but 100 (§16.7 step 2)
                c.timers[slot(Timer::TimerB)] = None;
                if code > 100 {
                    self.timers
                        .arm(&mut c.timers, cid, Timer::TimerC, now + t.c);
                }
            }
            if !invite && !c.flow.transport.is_reliable() {
                // Timer E continues at T2 in Proceeding (§17.1.2.2)
                c.interval = t.t2;
            }
            let pending = std::mem::take(&mut c.cancel_pending);
            if pending && invite {
                self.send_cancel(now, cid);
            }
            if code == 100 {
                return; // 100 is hop-by-hop (§16.7 step 5)
            }
        } else {
            c.state = State::Completed;
            c.timers = [None; TIMERS];
            let reliable = c.flow.transport.is_reliable();
            if invite && code >= 300 {
                // ACK the non-2xx hop by hop (§17.1.1.3)
                let ack = build_ack(&c.request, &msg);
                let f = c.flow;
                let bytes = ack.to_bytes();
                c.ack = Some(bytes.clone());
                let d = if reliable {
                    Duration::ZERO
                } else {
                    Duration::from_secs(32)
                };
                self.timers.arm(&mut c.timers, cid, Timer::TimerD, now + d);
                self.transmits.push_back(Transmit::on(f, bytes));
                self.stats.sent += 1;
            } else if invite {
                self.remove_client(cid);
            } else {
                let k = if reliable { Duration::ZERO } else { t.t4 };
                self.timers.arm(&mut c.timers, cid, Timer::TimerK, now + k);
            }
        }
        // forward upstream (§16.7)
        let Some(sid) = server else { return };
        msg.pop_front("Via");
        if msg.top_via().is_err() {
            return;
        }
        if code == 503 {
            // RFC 3261 §16.7 step 6: a 503 upstream would say that this proxy cannot serve
            // any request; when it is the only response (no forking here) a 500 goes instead.
            if invite {
                self.track_response_dialog(now, &msg, code);
            }
            self.respond(now, sid, 500, "Server Internal Error");
            return;
        }
        self.fix_response_contact(&mut msg, flow, natted_target);
        let natted =
            self.media.active() && (natted_target || self.response_natted(&msg, flow.remote));
        self.media.on_response(&mut msg, natted, &mut self.events);
        if invite {
            self.track_response_dialog(now, &msg, code);
        }
        self.send_upstream(now, sid, msg);
    }

    /// Where a response forwarded statelessly goes (a 2xx retransmission after the INVITE
    /// transaction ended): by the Via alone; over UDP a registered UA's flow when one
    /// matches (its NAT binding, see `flow_to`).
    fn next_hop_for_response(&self, via: &Via, from: Flow) -> Flow {
        let t = Transport::from_token(&via.transport).unwrap_or(Transport::Udp);
        let d = self.via_dest(via, t, self.local_for(t), from.remote.ip());
        if t.is_reliable() {
            d
        } else {
            self.flow_to(d.transport, d.remote)
        }
    }

    fn fix_response_contact(&mut self, msg: &mut Message, flow: Flow, natted_target: bool) {
        let mut tests = NatTests(self.config.nat.tests.0 & NatTests::PRIVATE_CONTACT.0);
        if !tests.is_empty() {
            tests = nat::detect(msg, flow.remote, tests);
        }
        if natted_target && tests.is_empty() && !self.config.nat.tests.is_empty() {
            tests = NatTests::SOURCE_DIFFERS_FROM_VIA; // the target's REGISTER was NATed
        }
        self.note_nat(msg, flow, tests);
    }

    fn remove_client(&mut self, cid: TxId) {
        if let Some(c) = self.clients.remove(&cid) {
            self.client_keys.remove(&(c.branch, c.method));
        }
    }

    fn remove_server(&mut self, id: TxId) {
        if let Some(s) = self.servers.remove(&id) {
            self.server_keys.remove(&s.key);
        }
    }

    // ----- dialogs -----

    fn track_request_dialog(&mut self, now: Instant, msg: &Message, method: &Method) {
        let Ok(call_id) = msg.call_id().map(str::to_string) else {
            return;
        };
        let to_tag = msg.to().ok().and_then(|t| t.tag().map(str::to_string));
        match method {
            Method::Invite if to_tag.is_none() => {
                if self.dialogs.contains_key(&call_id) {
                    return;
                }
                let from = msg.from().ok();
                let from_tag = from
                    .as_ref()
                    .and_then(|f| f.tag().map(str::to_string))
                    .unwrap_or_default();
                let deadline = now + self.config.dialog_timeout;
                self.dialogs.insert(
                    call_id.clone(),
                    Dialog {
                        from_tag: from_tag.clone(),
                        confirmed: false,
                        deadline,
                    },
                );
                self.dialog_timers.insert((deadline, call_id.clone()));
                self.events.push_back(ProxyEvent::DialogStarted {
                    call_id,
                    from_tag,
                    caller: from.map(|f| f.uri.to_string()).unwrap_or_default(),
                    callee: msg.to().map(|t| t.uri.to_string()).unwrap_or_default(),
                });
            }
            Method::Bye => {
                if let Some(d) = self.dialogs.remove(&call_id) {
                    let by_caller = msg
                        .from()
                        .ok()
                        .and_then(|f| f.tag().map(|t| t == d.from_tag))
                        .unwrap_or(false);
                    self.events.push_back(ProxyEvent::DialogEnded {
                        call_id: call_id.clone(),
                        reason: DialogEndReason::Bye { by_caller },
                    });
                    self.media.end(&call_id, &mut self.events);
                }
            }
            _ => {
                let timeout = self.config.dialog_timeout;
                if let Some(d) = self.dialogs.get_mut(&call_id) {
                    d.deadline = now + timeout;
                    self.dialog_timers.insert((d.deadline, call_id));
                }
            }
        }
    }

    fn track_response_dialog(&mut self, _now: Instant, msg: &Message, code: u16) {
        let Ok(call_id) = msg.call_id().map(str::to_string) else {
            return;
        };
        let Some(d) = self.dialogs.get_mut(&call_id) else {
            return;
        };
        if (200..300).contains(&code) && !d.confirmed {
            d.confirmed = true;
            let to_tag = msg
                .to()
                .ok()
                .and_then(|t| t.tag().map(str::to_string))
                .unwrap_or_default();
            self.events
                .push_back(ProxyEvent::DialogConfirmed { call_id, to_tag });
        } else if code >= 300 && !d.confirmed {
            self.dialogs.remove(&call_id);
            let reason = if code == 487 {
                DialogEndReason::Cancelled
            } else {
                DialogEndReason::Failed(code)
            };
            self.events.push_back(ProxyEvent::DialogEnded {
                call_id: call_id.clone(),
                reason,
            });
            self.media.end(&call_id, &mut self.events);
        }
    }

    // ----- timers -----

    /// Fire everything due at or before `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        for (aor, contact) in self.registrar.handle_timeout(now) {
            self.events.push_back(ProxyEvent::RegistrationRemoved {
                aor,
                contact,
                reason: RemovalReason::Expired,
            });
        }
        while let Some((at, id, timer)) = self.timers.pop_due(now) {
            self.fire(now, at, id, timer);
        }
        while let Some((at, call_id)) = self.dialog_timers.first().cloned() {
            if at > now {
                break;
            }
            self.dialog_timers.pop_first();
            if self.dialogs.get(&call_id).is_some_and(|d| d.deadline == at) {
                self.dialogs.remove(&call_id);
                self.events.push_back(ProxyEvent::DialogEnded {
                    call_id: call_id.clone(),
                    reason: DialogEndReason::Timeout,
                });
                self.media.end(&call_id, &mut self.events);
            }
        }
        while let Some((at, aor, contact)) = self.keepalive_due.first().cloned() {
            if at > now {
                break;
            }
            self.keepalive_due.pop_first();
            self.keepalive(now, aor, contact);
        }
    }

    fn fire(&mut self, now: Instant, at: Instant, id: TxId, timer: Timer) {
        let t = self.config.timers;
        let s = slot(timer);
        match timer {
            Timer::TimerA
            | Timer::TimerB
            | Timer::TimerD
            | Timer::TimerE
            | Timer::TimerF
            | Timer::TimerK
            | Timer::TimerC => {
                let Some(c) = self.clients.get_mut(&id) else {
                    return;
                };
                if c.timers[s] != Some(at) {
                    return; // re-armed or cancelled
                }
                c.timers[s] = None;
                match timer {
                    Timer::TimerA | Timer::TimerE => {
                        let (f, b) = (c.flow, c.bytes.clone());
                        c.interval = if timer == Timer::TimerA {
                            c.interval * 2
                        } else if c.state == State::Proceeding {
                            t.t2
                        } else {
                            (c.interval * 2).min(t.t2)
                        };
                        let next = now + c.interval;
                        self.timers.arm(&mut c.timers, id, timer, next);
                        self.resend(f, b);
                    }
                    Timer::TimerC if c.state == State::Proceeding => {
                        // §16.8: it rang too long: CANCEL it (once), and give the INVITE
                        // 64×T1 more for its final response (§9.1) before a 408
                        let cancelled = self
                            .client_keys
                            .contains_key(&(c.branch.clone(), "CANCEL".to_string()));
                        self.timers
                            .arm(&mut c.timers, id, Timer::TimerB, now + 64 * t.t1);
                        self.events.push_back(ProxyEvent::TransactionTimeout {
                            method: "INVITE".into(),
                            timer,
                        });
                        if !cancelled {
                            self.send_cancel(now, id);
                        }
                    }
                    Timer::TimerB | Timer::TimerF | Timer::TimerC => {
                        let (server, method) = (c.server, c.method.clone());
                        self.remove_client(id);
                        self.events.push_back(ProxyEvent::TransactionTimeout {
                            method: method.clone(),
                            timer,
                        });
                        if let Some(sid) = server {
                            if method == "INVITE" {
                                self.end_attempt(sid, DialogEndReason::TransactionTimeout);
                            }
                            self.respond(now, sid, 408, "Request Timeout");
                        }
                    }
                    _ => self.remove_client(id),
                }
            }
            Timer::TimerG | Timer::TimerH | Timer::TimerI | Timer::TimerJ => {
                let Some(st) = self.servers.get_mut(&id) else {
                    return;
                };
                if st.timers[s] != Some(at) {
                    return;
                }
                st.timers[s] = None;
                match timer {
                    Timer::TimerG => {
                        st.g_interval = (st.g_interval * 2).min(t.t2);
                        let next = now + st.g_interval;
                        self.timers.arm(&mut st.timers, id, timer, next);
                        if let Some((f, b)) = st.last_response.clone() {
                            self.resend(f, b);
                        }
                    }
                    Timer::TimerH => {
                        self.remove_server(id);
                        self.events.push_back(ProxyEvent::TransactionTimeout {
                            method: "INVITE".into(),
                            timer,
                        });
                    }
                    _ => self.remove_server(id),
                }
            }
        }
    }

    // ----- keepalives -----

    fn keepalive(&mut self, now: Instant, aor: String, contact: String) {
        let Some(k) = self.config.nat.keepalive else {
            return;
        };
        // the previous ping is unanswered when its branch is still pending
        let pending: Vec<String> = self
            .keepalive_branches
            .iter()
            .filter(|(_, v)| v.0 == aor && v.1 == contact)
            .map(|(k, _)| k.clone())
            .collect();
        for p in &pending {
            self.keepalive_branches.remove(p);
        }
        let Some(b) = self.registrar.binding_mut(&aor, &contact) else {
            return; // gone: no more pings
        };
        if !pending.is_empty() {
            b.missed_keepalives += 1;
        }
        if b.missed_keepalives >= k.max_missed {
            self.remove_unreachable(aor, contact);
            return;
        }
        let (path, uri) = (b.path, b.uri.clone());
        let n = self.next_u64();
        let branch = format!("{MAGIC}ka{n:016x}");
        let local = self.local_for(path.transport);
        let method = match k.method {
            KeepaliveMethod::Options => Method::Options,
            KeepaliveMethod::Notify => Method::Notify,
        };
        let mut req = Message::request(method.clone(), Uri::Sip(uri.clone()));
        self.push_our_via(&mut req, path, &branch);
        let me = SipUri::new(Some("pinhole"), local.ip(), Some(local.port()));
        req.push_header(Header::new("From", format!("<{me}>;tag=ka{:x}", n >> 32)));
        req.push_header(Header::new("To", NameAddr::new(Uri::Sip(uri)).to_string()));
        req.push_header(Header::new("Call-ID", format!("ka{n:016x}")));
        req.push_header(Header::new("CSeq", format!("1 {method}")));
        req.push_header(Header::new("Max-Forwards", "70"));
        if method == Method::Notify {
            req.push_header(Header::new("Event", "keep-alive"));
        }
        req.push_header(Header::new("Content-Length", "0"));
        self.send(path, &req);
        self.keepalive_branches
            .insert(branch, (aor.clone(), contact.clone()));
        self.events.push_back(ProxyEvent::KeepaliveSent {
            aor: aor.clone(),
            flow: path,
        });
        self.keepalive_due.insert((now + k.interval, aor, contact));
    }
}

/// The ACK for a non-2xx final response to `invite` (§17.1.1.3): Request-URI, Call-ID,
/// From, CSeq number, Route and the top Via of the INVITE, To of the response.
fn build_ack(invite: &Message, resp: &Message) -> Message {
    let uri = invite
        .request_uri()
        .cloned()
        .unwrap_or(Uri::Other(String::new()));
    let mut ack = Message::request(Method::Ack, uri);
    if let Some(v) = invite.values("Via").next() {
        ack.push_header(Header::new("Via", v));
    }
    for h in invite.headers() {
        if h.is("Route") || h.is("From") || h.is("Call-ID") {
            ack.push_header(h.clone());
        }
    }
    for h in resp.headers().iter().filter(|h| h.is("To")) {
        ack.push_header(h.clone());
    }
    let seq = invite.cseq().map(|c| c.seq).unwrap_or(1);
    ack.push_header(Header::new("CSeq", format!("{seq} ACK")));
    ack.push_header(Header::new("Max-Forwards", "70"));
    ack.push_header(Header::new("Content-Length", "0"));
    ack
}
