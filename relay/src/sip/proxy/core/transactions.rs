//! Server and client transactions (RFC 3261 §17) as the proxy uses them (§16.7, §16.8):
//! matching, our own answers, CANCEL (§9.1), responses forwarded upstream, and the
//! timers A–K (and C, §16.8) firing.

use super::*;

impl Proxy {
    pub(super) fn server_key(msg: &Message, via: &Via, method: &str) -> String {
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

    /// Answer a server transaction ourselves.
    pub(super) fn respond(&mut self, now: Instant, id: TxId, code: u16, reason: &str) {
        let Some(st) = self.servers.get(&id) else {
            return;
        };
        let tag = (code > 100).then(|| format!("{:x}", fnv(&[&st.key], self.config.seed)));
        let resp = Message::response_to(&st.request, code, reason, tag.as_deref());
        self.send_upstream(now, id, resp);
    }

    pub(super) fn respond_with(&mut self, now: Instant, id: TxId, resp: Message) {
        self.send_upstream(now, id, resp);
    }

    /// Send a response through server transaction `id` and move it on (§17.2.1, §17.2.2).
    pub(super) fn send_upstream(&mut self, now: Instant, id: TxId, resp: Message) {
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

    pub(super) fn handle_cancel(&mut self, now: Instant, id: TxId, msg: &Message, via: &Via) {
        let key = Self::server_key(msg, via, "INVITE");
        let Some(&inv) = self.server_keys.get(&key) else {
            self.respond(now, id, 481, "Call/Transaction Does Not Exist");
            return;
        };
        self.respond(now, id, 200, "OK");
        let client = self.servers.get(&inv).and_then(|s| s.client);
        let Some(cid) = client else {
            // not forwarded yet: parked while the media relay is asked (`parking`)
            if self.media.cancel_parked(now, inv, &mut self.events) {
                self.respond(now, inv, 487, "Request Terminated");
            }
            return;
        };
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
    pub(super) fn send_cancel(&mut self, now: Instant, cid: TxId) {
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
        self.start_own_request(now, cancel, flow, branch);
    }

    pub(super) fn handle_response(&mut self, now: Instant, flow: Flow, mut msg: Message) {
        let Ok(top) = msg.top_via() else { return };
        let branch = top.branch().unwrap_or_default().to_string();
        if self.keepalive_answered(&branch) {
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
                    let source = Source {
                        remote: flow.remote,
                        natted,
                    };
                    self.media.submit(
                        now,
                        msg,
                        source,
                        None,
                        Resume::Stateless { dest },
                        &mut self.events,
                    );
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
                self.track_response_dialog(now, &msg, code, flow);
            }
            self.respond(now, sid, 500, "Server Internal Error");
            return;
        }
        self.fix_response_contact(&mut msg, flow, natted_target);
        let natted =
            self.media.active() && (natted_target || self.response_natted(&msg, flow.remote));
        let source = Source {
            remote: flow.remote,
            natted,
        };
        let resume = Resume::Response {
            server: sid,
            invite,
            code,
            from: flow,
        };
        self.media
            .submit(now, msg, source, None, resume, &mut self.events);
    }

    /// Whether the sender of a response is behind a NAT: a NATed binding's path, or a
    /// private Contact when that test is configured.
    pub(super) fn response_natted(&self, msg: &Message, from: SocketAddr) -> bool {
        let tests = NatTests(self.config.nat.tests.0 & NatTests::PRIVATE_CONTACT.0);
        self.source_natted(from) || (!tests.is_empty() && !nat::detect(msg, from, tests).is_empty())
    }

    pub(super) fn fix_response_contact(
        &mut self,
        msg: &mut Message,
        flow: Flow,
        natted_target: bool,
    ) {
        let mut tests = NatTests(self.config.nat.tests.0 & NatTests::PRIVATE_CONTACT.0);
        if !tests.is_empty() {
            tests = nat::detect(msg, flow.remote, tests);
        }
        if natted_target && tests.is_empty() && !self.config.nat.tests.is_empty() {
            tests = NatTests::SOURCE_DIFFERS_FROM_VIA; // the target's REGISTER was NATed
        }
        self.note_nat(msg, flow, tests);
    }

    pub(super) fn remove_client(&mut self, cid: TxId) {
        if let Some(c) = self.clients.remove(&cid) {
            self.client_keys.remove(&(c.branch, c.method));
        }
    }

    pub(super) fn remove_server(&mut self, id: TxId) {
        if let Some(s) = self.servers.remove(&id) {
            self.server_keys.remove(&s.key);
        }
    }

    pub(super) fn fire(&mut self, now: Instant, at: Instant, id: TxId, timer: Timer) {
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
                                self.end_attempt(now, sid, DialogEndReason::TransactionTimeout);
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
