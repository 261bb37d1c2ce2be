//! Transport errors (RFC 3261 §18.4): what the proxy does when the driver reports that a
//! message it was given could not be sent ([`Input::TransportError`]).
//!
//! - A forwarded request: the client transaction ends at once as if a 503 had arrived
//!   (§17.1.4: inform the TU and terminate; §16.9: the proxy MUST behave as if the request
//!   received a 503). With one target per request (no forking) that 503 is the only
//!   response in the context, and §16.7 step 6 says a proxy SHOULD then send 500 upstream,
//!   not the 503 (a 503 upstream would claim that the proxy itself is out of service). A
//!   dialog-creating INVITE ends (`DialogEnded{TransportError}`) and its media session is
//!   released, as on any failure response. Without this the caller waits for Timer B/F
//!   (64·T1 = 32 s) and gets a 408.
//! - A keepalive ping: the contact is dead at once (`RegistrationRemoved{Unreachable}`),
//!   without waiting for the missed-ping count: nothing answers a ping that never left.
//! - A response: §17.2.4 first tries the §18.2.2 fallbacks — once the request's
//!   connection is gone, an open connection to received:rport, else a new one to received
//!   and the sent-by port ([`Proxy::response_dest`]). When the next choice is the flow that
//!   just failed they are exhausted: the server transaction terminates (§17.2.4) and the
//!   response is dropped (§16.9), without cancelling the client transaction (§16.9: else
//!   one bad Via could fail every branch). RFC 3263 §6's further step (the sent-by host's
//!   own address) is left out: received is set whenever it differs, and no DNS is done.
//! - An ACK (hop-by-hop for a non-2xx, or a 2xx's end to end): nothing to fail; counted.

use super::*;

impl Proxy {
    /// A transmit came back undelivered (see the module docs).
    pub(super) fn handle_transport_error(&mut self, now: Instant, flow: Flow, bytes: &[u8]) {
        let framing = if flow.transport.is_reliable() {
            Framing::Stream
        } else {
            Framing::Datagram
        };
        // Our own output parses (it was parsed or built before it was sent); anything else
        // is not a message of ours: counted and otherwise ignored.
        let Ok(msg) = Message::parse_with(bytes, &Limits::default(), framing) else {
            self.give_up(flow, None);
            return;
        };
        if msg.is_request() {
            self.request_failed(now, flow, &msg);
        } else {
            self.response_failed(flow, msg, bytes);
        }
    }

    /// Count a message lost for good and say so.
    fn give_up(&mut self, flow: Flow, msg: Option<&Message>) {
        *self
            .stats
            .dropped
            .entry(DropReason::TransportError)
            .or_default() += 1;
        self.events.push_back(ProxyEvent::SendFailed {
            flow,
            summary: msg.map(Message::summary).unwrap_or_default(),
            call_id: msg
                .and_then(|m| m.call_id().ok())
                .unwrap_or_default()
                .to_string(),
            retried: None,
        });
    }

    fn request_failed(&mut self, now: Instant, flow: Flow, msg: &Message) {
        self.give_up(flow, Some(msg));
        let Ok(via) = msg.top_via() else { return };
        let branch = via.branch().unwrap_or_default().to_string();
        if let Some((aor, contact)) = self.keepalive_branches.remove(&branch) {
            self.remove_unreachable(aor, contact);
            return;
        }
        let method = msg.method().map(|m| m.as_str().to_string());
        let Some(method) = method else { return };
        let Some(&cid) = self.client_keys.get(&(branch, method.clone())) else {
            return; // an ACK, or a transaction already over
        };
        let Some(c) = self.clients.get(&cid) else {
            return;
        };
        if !matches!(c.state, State::Calling | State::Proceeding) {
            return; // a final response is in: this was a late copy
        }
        let server = c.server;
        self.remove_client(cid);
        let Some(sid) = server else { return }; // a CANCEL: the INVITE still runs
        if method == "INVITE" {
            self.end_attempt(now, sid, DialogEndReason::TransportError);
        }
        self.respond(now, sid, 500, "Server Internal Error");
    }

    /// The dialog attempt of server INVITE `sid` ended before a 2xx: the event and the
    /// media session go, as for a failure response or Timer B.
    pub(super) fn end_attempt(&mut self, now: Instant, sid: TxId, reason: DialogEndReason) {
        let Some(call_id) = self
            .servers
            .get(&sid)
            .and_then(|s| s.request.call_id().ok().map(str::to_string))
        else {
            return;
        };
        if self.dialogs.get(&call_id).is_some_and(|d| !d.confirmed) {
            self.dialogs.remove(&call_id);
            self.events.push_back(ProxyEvent::DialogEnded {
                call_id: call_id.clone(),
                reason,
            });
            self.media.end(now, &call_id, &mut self.events);
        }
    }

    fn response_failed(&mut self, flow: Flow, msg: Message, bytes: &[u8]) {
        let Ok(via) = msg.top_via() else {
            self.give_up(flow, Some(&msg));
            return;
        };
        let server = self.server_of(&msg, &via);
        let next = match server.and_then(|id| self.servers.get(&id)) {
            Some(st) => self.response_dest(&via, st.flow),
            // a response sent without a transaction (a 2xx retransmission forwarded
            // statelessly, a 400 to a malformed request): the Via alone
            None => self.next_hop_for_response(&via, flow),
        };
        if next == flow || !self.conn_open(next.conn) {
            self.give_up(flow, Some(&msg));
            if let Some(id) = server {
                self.remove_server(id);
            }
            return;
        }
        self.events.push_back(ProxyEvent::SendFailed {
            flow,
            summary: msg.summary(),
            call_id: msg.call_id().unwrap_or_default().to_string(),
            retried: Some(next),
        });
        self.stats.sent += 1;
        self.transmits.push_back(Transmit::on(next, bytes.to_vec()));
        if let Some(st) = server.and_then(|id| self.servers.get_mut(&id))
            && let Some(last) = &mut st.last_response
            && last.0 == flow
        {
            // retransmissions (Timer G, a repeated request) go where this one went
            last.0 = next;
        }
    }

    /// The server transaction a response of ours belongs to: the one whose request has the
    /// same top Via (with our received/rport), Call-ID and CSeq. A linear search: transport
    /// errors are rare, and it matches RFC 2543 transactions (no magic-cookie branch) too.
    fn server_of(&self, resp: &Message, via: &Via) -> Option<TxId> {
        let call_id = resp.call_id().ok()?;
        let cseq = resp.cseq().ok()?;
        self.servers
            .iter()
            .find(|(_, s)| {
                s.request.call_id().ok() == Some(call_id)
                    && s.request.cseq().ok().as_ref() == Some(&cseq)
                    && s.request.top_via().ok().as_ref() == Some(via)
            })
            .map(|(&id, _)| id)
    }
}
