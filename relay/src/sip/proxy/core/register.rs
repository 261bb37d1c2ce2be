//! REGISTER (RFC 3261 §10.3): the registrar's answer, with the bindings' remaining
//! expiries, and the NAT path of each new binding (keepalives start here).

use super::*;

impl Proxy {
    pub(super) fn handle_register(
        &mut self,
        now: Instant,
        id: TxId,
        msg: &Message,
        flow: Flow,
        natted: bool,
    ) {
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
                    if natted {
                        self.schedule_keepalive(now, &aor, &contact);
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
}
