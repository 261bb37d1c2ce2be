//! Keepalives towards NATed contacts (OPTIONS or NOTIFY pings, as OpenSIPS's nathelper
//! sends them): spread over the interval, missed pings counted, and the contact removed
//! when too many are missed or its path is gone.

use super::*;

impl Proxy {
    /// A NATed binding was added: its first ping goes at a random point of the interval,
    /// so that bindings registered together do not ping together.
    pub(super) fn schedule_keepalive(&mut self, now: Instant, aor: &str, contact: &str) {
        if let Some(k) = self.config.nat.keepalive {
            let spread = self.next_u64() % (k.interval.as_millis().max(1) as u64);
            self.keepalive_due.insert((
                now + Duration::from_millis(spread),
                aor.to_string(),
                contact.to_string(),
            ));
        }
    }

    /// Pings whose time has come.
    pub(super) fn send_due_keepalives(&mut self, now: Instant) {
        while let Some((at, aor, contact)) = self.keepalive_due.first().cloned() {
            if at > now {
                break;
            }
            self.keepalive_due.pop_first();
            self.keepalive(now, aor, contact);
        }
    }

    /// Whether a response answers one of our pings (then it is absorbed, and the
    /// binding's missed count starts again).
    pub(super) fn keepalive_answered(&mut self, branch: &str) -> bool {
        let Some((aor, contact)) = self.keepalive_branches.remove(branch) else {
            return false;
        };
        if let Some(b) = self.registrar.binding_mut(&aor, &contact) {
            b.missed_keepalives = 0;
        }
        true
    }

    /// Keepalive pings sent and not answered yet.
    pub fn pending_keepalives(&self) -> usize {
        self.keepalive_branches.len()
    }

    pub(super) fn keepalive(&mut self, now: Instant, aor: String, contact: String) {
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

    /// Removes a binding found unreachable — its NAT path closed, its keepalives missed
    /// or failed at the transport — and reports it.
    pub(super) fn remove_unreachable(&mut self, aor: String, contact: String) {
        if self.registrar.remove(&aor, &contact) {
            self.events.push_back(ProxyEvent::RegistrationRemoved {
                aor,
                contact,
                reason: RemovalReason::Unreachable,
            });
        }
    }
}
