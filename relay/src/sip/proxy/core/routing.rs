//! Request routing (RFC 3261 §16): the request preamble (received/rport and the NAT tests,
//! Max-Forwards, loose-route Route processing), target lookup (§16.5) and forwarding with
//! Record-Route and our Via (§16.6), for requests and for the ACK of a 2xx alike.

use super::*;

/// What the request preamble ([`Proxy::request_preamble`]) makes of a request or an ACK
/// on its way to a target.
#[derive(Debug)]
pub(super) struct Preamble {
    /// Max-Forwards as it arrived (RFC 3261 §16.3 step 3), `None` when absent (then the
    /// forwarded copy gets 70, §16.6 step 3).
    max_forwards: Option<u8>,
    /// The Request-URI (a non-URI stands for one that no rule matches).
    ruri: Uri,
    /// A Route is left once ours is removed: the request is loose-routed there (§16.4,
    /// §16.6 step 7).
    has_route: bool,
    /// The Request-URI names a domain of ours (§16.5: look the target up in the registrar).
    ours: bool,
}

impl Preamble {
    /// The forwarded copy's Max-Forwards: one less, or 70 when the request had none
    /// (RFC 3261 §16.6 step 3).
    fn set_max_forwards(&self, msg: &mut Message) {
        msg.set(
            "Max-Forwards",
            self.max_forwards.map_or(70, |m| m - 1).to_string(),
        );
    }
}

/// The preamble's one refusal: Max-Forwards is zero (RFC 3261 §16.3 step 3); a request is
/// answered 483, an ACK (which has no response) is dropped.
pub(super) struct TooManyHops;

impl Proxy {
    pub(super) fn is_our_ip(&self, ip: IpAddr) -> bool {
        self.config.listen.iter().any(|(_, a)| a.ip() == ip)
    }

    pub(super) fn is_our_domain(&self, host: &str) -> bool {
        host_ip(host).is_some_and(|ip| self.is_our_ip(ip))
            || self
                .config
                .domains
                .iter()
                .any(|d| d.eq_ignore_ascii_case(host))
    }

    /// Whether a URI names this proxy (host and port), for Route processing (§16.4).
    pub(super) fn is_us(&self, u: &SipUri) -> bool {
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

    /// A request arrived (an ACK too: it is matched to its INVITE here, then routed by
    /// [`Proxy::handle_ack`]).
    pub(super) fn handle_request(&mut self, now: Instant, flow: Flow, mut msg: Message) {
        // received / rport on the top Via (RFC 3261 §18.2.1, RFC 3581 §4); forced when a
        // NAT test hits (nathelper's force_rport). Done once for requests and ACKs alike.
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
        let Ok(pre) = self.request_preamble(&mut msg) else {
            self.respond(now, id, 483, "Too Many Hops");
            return;
        };
        if !pre.has_route && pre.ours && method == Method::Register {
            self.handle_register(now, id, &msg, flow, !natted.is_empty());
            return;
        }
        if !pre.has_route
            && method == Method::Options
            && pre.ruri.sip().is_some_and(|u| u.user.is_none() && pre.ours)
        {
            self.respond(now, id, 200, "OK");
            return;
        }
        // Target (§16.5).
        let target = self.target(&mut msg, &pre);
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
        // the media side may park it until the relay answers (`parking`)
        let source = Source {
            remote: flow.remote,
            natted: media_natted,
        };
        let resume = Resume::Request {
            server: id,
            dest,
            natted_target,
            pre,
            method,
        };
        self.media
            .submit(now, msg, source, Some(id), resume, &mut self.events);
    }

    /// An ACK: absorbed by the INVITE server transaction it completes (a non-2xx's), or,
    /// for a 2xx, routed like any request but statelessly.
    pub(super) fn handle_ack(&mut self, now: Instant, flow: Flow, mut msg: Message, via: &Via) {
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
        let Ok(pre) = self.request_preamble(&mut msg) else {
            self.drop_msg(DropReason::UnroutableAck, flow.remote);
            return;
        };
        let Ok((dest, _)) = self.target(&mut msg, &pre) else {
            self.drop_msg(DropReason::UnroutableAck, flow.remote);
            return;
        };
        pre.set_max_forwards(&mut msg);
        let branch = format!(
            "{MAGIC}{:016x}",
            fnv(&[via.branch().unwrap_or_default(), "ACK"], self.config.seed)
        );
        // an answer in the ACK (offerless INVITE); an ACK is never refused
        let source = Source {
            remote: flow.remote,
            natted: false,
        };
        self.media.submit(
            now,
            msg,
            source,
            None,
            Resume::Ack { dest, branch },
            &mut self.events,
        );
    }

    /// The request preamble, the same for every request and for the ACK of a 2xx, run
    /// once the request is matched to its transaction: the Max-Forwards check (RFC 3261
    /// §16.3 step 3), Route processing (§16.4: a top Route naming us is removed), and
    /// what the target lookup (§16.5) needs of the Request-URI.
    pub(super) fn request_preamble(&self, msg: &mut Message) -> Result<Preamble, TooManyHops> {
        let max_forwards = msg.max_forwards().ok().flatten();
        if max_forwards == Some(0) {
            return Err(TooManyHops);
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
        Ok(Preamble {
            max_forwards,
            ruri,
            has_route,
            ours,
        })
    }

    /// Whether `remote` is the NAT path of a NATed registration binding.
    pub(super) fn source_natted(&self, remote: SocketAddr) -> bool {
        self.registrar
            .bindings()
            .any(|(_, b)| b.natted && b.path.remote == remote)
    }

    pub(super) fn note_nat(&mut self, msg: &mut Message, flow: Flow, natted: NatTests) {
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
    pub(super) fn target(
        &self,
        msg: &mut Message,
        pre: &Preamble,
    ) -> Result<(Flow, bool), (u16, &'static str)> {
        let (has_route, ours, ruri) = (pre.has_route, pre.ours, &pre.ruri);
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

    pub(super) fn forward_request(
        &mut self,
        now: Instant,
        server: TxId,
        mut msg: Message,
        dest: Flow,
        natted_target: bool,
        pre: &Preamble,
    ) {
        let method = msg.method().cloned().unwrap_or(Method::Options);
        pre.set_max_forwards(&mut msg);
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

    pub(super) fn push_our_via(&self, msg: &mut Message, dest: Flow, branch: &str) {
        let local = self.local_for(dest.transport);
        let via = Via::new(
            dest.transport.as_str(),
            host_text(local.ip()),
            Some(local.port()),
            branch,
        );
        msg.push_front("Via", via.to_string());
    }
}
