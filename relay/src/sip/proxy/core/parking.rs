//! Messages parked while the media relay is asked, and resumed where they stopped
//! ([`super::super::media`] decides what to ask and queues per call); and the dialog a
//! relay ends (`media-ended`): a BYE to both sides, built from the dialog state
//! (`dialog`), whose 200s are absorbed by client transactions of the proxy's own.

use super::routing::Preamble;
use super::*;
use crate::sip::proxy::media::Ready;

/// Where a message stopped for the media side, and how it goes on.
#[derive(Debug)]
pub(super) enum Resume {
    /// A request routed to `dest` through server transaction `server` (§16.6).
    Request {
        server: TxId,
        dest: Flow,
        natted_target: bool,
        pre: Preamble,
        method: Method,
    },
    /// The ACK of a 2xx, routed statelessly with `branch` (§16.11).
    Ack { dest: Flow, branch: String },
    /// A response to forward upstream through server transaction `server` (§16.7).
    Response {
        server: TxId,
        invite: bool,
        code: u16,
        from: Flow,
    },
    /// A 2xx retransmission forwarded statelessly.
    Stateless { dest: Flow },
}

impl Proxy {
    /// Move on with every message the media side let go, send its ng datagrams, and end
    /// the dialogs the relay ended. Called at the end of every `handle_*`.
    pub(super) fn run_media(&mut self, now: Instant) {
        loop {
            while let Some(t) = self.media.poll_transmit() {
                self.transmits.push_back(t);
            }
            if let Some((call_id, reason)) = self.media.poll_ended() {
                self.media_ended(now, &call_id, reason);
                continue;
            }
            let Some(ready) = self.media.poll_ready() else {
                break;
            };
            self.resume(now, ready);
        }
    }

    fn resume(&mut self, now: Instant, ready: Ready<Resume>) {
        let Ready {
            mut msg,
            resume,
            refuse,
        } = ready;
        match resume {
            Resume::Request {
                server,
                dest,
                natted_target,
                pre,
                method,
            } => {
                let Some(from) = self.servers.get(&server).map(|s| s.flow) else {
                    return; // the transaction is gone (answered meanwhile)
                };
                if let Some((code, reason)) = refuse {
                    self.respond(now, server, code, reason);
                    return;
                }
                self.track_request_dialog(now, &msg, &method, from);
                self.forward_request(now, server, msg, dest, natted_target, &pre);
            }
            Resume::Ack { dest, branch } => {
                self.push_our_via(&mut msg, dest, &branch);
                self.send(dest, &msg);
            }
            Resume::Response {
                server,
                invite,
                code,
                from,
            } => {
                if invite {
                    self.track_response_dialog(now, &msg, code, from);
                }
                self.send_upstream(now, server, msg);
            }
            Resume::Stateless { dest } => {
                self.send(dest, &msg);
            }
        }
    }

    /// The relay ended the call's media: a confirmed dialog ends with a BYE to each side
    /// (see [`super::super::media`]); an unconfirmed one is left to its transaction.
    fn media_ended(&mut self, now: Instant, call_id: &str, reason: String) {
        let confirmed = self.dialogs.get(call_id).is_some_and(|d| d.confirmed);
        if !confirmed {
            self.media.forget(now, call_id, &mut self.events);
            return;
        }
        let Some(d) = self.dialogs.remove(call_id) else {
            return;
        };
        if let Some(callee) = &d.callee {
            // to the callee as from the caller, and to the caller as from the callee
            self.send_bye(
                now,
                call_id,
                callee,
                &d.caller.identity,
                &callee.identity,
                d.caller.cseq + 1,
            );
            self.send_bye(
                now,
                call_id,
                &d.caller,
                &callee.identity,
                &d.caller.identity,
                callee.cseq + 1,
            );
        }
        self.events.push_back(ProxyEvent::DialogEnded {
            call_id: call_id.to_string(),
            reason: DialogEndReason::MediaEnded { reason },
        });
        self.media.forget(now, call_id, &mut self.events);
    }

    /// A BYE to `to` (RFC 3261 §15.1.1, §12.2.1.1: its Contact as Request-URI, its route
    /// set, From/To with the tags, a CSeq above what it has seen), in a client
    /// transaction of our own whose response goes nowhere.
    fn send_bye(
        &mut self,
        now: Instant,
        call_id: &str,
        to: &dialog::Side,
        from_hdr: &str,
        to_hdr: &str,
        seq: u32,
    ) {
        let mut bye = Message::request(Method::Bye, to.target.clone());
        let dest = to
            .route
            .first()
            .and_then(|r| NameAddr::parse(r, "Route").ok())
            .and_then(|n| n.uri.sip().and_then(|u| self.uri_dest(u)))
            .unwrap_or(to.flow);
        let branch = format!("{MAGIC}{:016x}", self.next_u64());
        self.push_our_via(&mut bye, dest, &branch);
        for r in &to.route {
            bye.push_header(Header::new("Route", r.clone()));
        }
        bye.push_header(Header::new("Max-Forwards", "70"));
        bye.push_header(Header::new("From", from_hdr));
        bye.push_header(Header::new("To", to_hdr));
        bye.push_header(Header::new("Call-ID", call_id));
        bye.push_header(Header::new("CSeq", format!("{seq} BYE")));
        bye.push_header(Header::new("Content-Length", "0"));
        self.start_own_request(now, bye, dest, branch);
    }

    /// Send a request of the proxy's own (a CANCEL, a BYE) in a client transaction
    /// without a server side: Timer E/F run, the response is absorbed.
    pub(super) fn start_own_request(
        &mut self,
        now: Instant,
        msg: Message,
        flow: Flow,
        branch: String,
    ) {
        let method = msg
            .method()
            .map(|m| m.as_str().to_string())
            .unwrap_or_default();
        let bytes = self.send(flow, &msg);
        let id = self.new_id();
        let t1 = self.config.timers.t1;
        let mut ct = ClientTx {
            branch: branch.clone(),
            method: method.clone(),
            request: msg,
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
        self.client_keys.insert((branch, method), id);
    }
}
