//! Dialog tracking (RFC 3261 §12): a call's dialog starts with its initial INVITE, is
//! confirmed by a 2xx, and ends on BYE, on a failure or CANCEL (487), or when nothing of
//! it has been seen for the dialog timeout; its media session ends with it. The proxy
//! keeps of each side what it needs to end the dialog itself with a BYE (RFC 3261 §15,
//! §12.2.1.1), as MediaProxy's dialog module does when the relay ends the media
//! (`parking`): its identity (From or To with its tag), its Contact, the flow it
//! signalled from, its route set as seen from the proxy, and the highest CSeq it sent.

use super::*;

/// One side of a dialog, as the proxy would address a request to it.
#[derive(Debug, Clone)]
pub(super) struct Side {
    /// Its name-addr with its tag (the INVITE's From for the caller, the 2xx's To for the
    /// callee), as written.
    pub(super) identity: String,
    /// Its remote target (Contact), as the UA wrote it.
    pub(super) target: Uri,
    /// The flow its messages came on (the NAT binding of a NATed UA).
    pub(super) flow: Flow,
    /// The proxies between us and it, nearest first (Record-Route, RFC 3261 §12.1).
    pub(super) route: Vec<String>,
    /// The highest CSeq number it sent in the dialog.
    pub(super) cseq: u32,
}

/// What the proxy keeps of a dialog: who ended it and when it times out, and both sides.
#[derive(Debug, Clone)]
pub(super) struct Dialog {
    from_tag: String,
    pub(super) confirmed: bool,
    deadline: Instant,
    pub(super) caller: Side,
    /// Known once the 2xx passed.
    pub(super) callee: Option<Side>,
}

/// The remote target a message's Contact names (a Contact the proxy fixed is restored to
/// what the UA wrote, `nat::restore_original`).
fn target_of(msg: &Message) -> Option<Uri> {
    let c = msg.name_addrs("Contact").ok()?.into_iter().next()?;
    Some(nat::restore_original(&c.uri).unwrap_or(c.uri))
}

impl Proxy {
    /// Live dialogs.
    pub fn dialog_count(&self) -> usize {
        self.dialogs.len()
    }

    /// Split a Record-Route list at our own entry: (the ones after it, the ones before it
    /// nearest-first). Both empty when we did not record-route.
    fn split_record_route(&self, msg: &Message) -> (Vec<String>, Vec<String>) {
        let rr = msg.name_addrs("Record-Route").unwrap_or_default();
        let Some(us) = rr
            .iter()
            .position(|n| n.uri.sip().is_some_and(|u| self.is_us(u)))
        else {
            return (Vec::new(), Vec::new());
        };
        let after = rr[us + 1..].iter().map(ToString::to_string).collect();
        let before = rr[..us].iter().rev().map(ToString::to_string).collect();
        (after, before)
    }

    pub(super) fn track_request_dialog(
        &mut self,
        now: Instant,
        msg: &Message,
        method: &Method,
        from: Flow,
    ) {
        let Ok(call_id) = msg.call_id().map(str::to_string) else {
            return;
        };
        let to_tag = msg.to().ok().and_then(|t| t.tag().map(str::to_string));
        let seq = msg.cseq().map(|c| c.seq).unwrap_or(0);
        let from_tag_of = |msg: &Message| msg.from().ok().and_then(|f| f.tag().map(str::to_string));
        match method {
            Method::Invite if to_tag.is_none() => {
                if self.dialogs.contains_key(&call_id) {
                    return;
                }
                let from_hdr = msg.from().ok();
                let from_tag = from_tag_of(msg).unwrap_or_default();
                let deadline = now + self.config.dialog_timeout;
                let caller = Side {
                    identity: msg.get("From").unwrap_or_default().to_string(),
                    target: target_of(msg)
                        .or_else(|| from_hdr.as_ref().map(|f| f.uri.clone()))
                        .unwrap_or(Uri::Other(String::new())),
                    flow: from,
                    // as it arrives here, before ours: the proxies towards the caller
                    route: msg
                        .name_addrs("Record-Route")
                        .unwrap_or_default()
                        .iter()
                        .map(ToString::to_string)
                        .collect(),
                    cseq: seq,
                };
                self.dialogs.insert(
                    call_id.clone(),
                    Dialog {
                        from_tag: from_tag.clone(),
                        confirmed: false,
                        deadline,
                        caller,
                        callee: None,
                    },
                );
                self.dialog_timers.insert((deadline, call_id.clone()));
                self.events.push_back(ProxyEvent::DialogStarted {
                    call_id,
                    from_tag,
                    caller: from_hdr.map(|f| f.uri.to_string()).unwrap_or_default(),
                    callee: msg.to().map(|t| t.uri.to_string()).unwrap_or_default(),
                });
            }
            Method::Bye => {
                if let Some(d) = self.dialogs.remove(&call_id) {
                    let by_caller = from_tag_of(msg).is_some_and(|t| t == d.from_tag);
                    self.events.push_back(ProxyEvent::DialogEnded {
                        call_id: call_id.clone(),
                        reason: DialogEndReason::Bye { by_caller },
                    });
                    self.media.end(now, &call_id, &mut self.events);
                }
            }
            _ => {
                let timeout = self.config.dialog_timeout;
                let by_caller = from_tag_of(msg);
                if let Some(d) = self.dialogs.get_mut(&call_id) {
                    d.deadline = now + timeout;
                    self.dialog_timers.insert((d.deadline, call_id));
                    if by_caller.as_deref() == Some(d.from_tag.as_str()) {
                        d.caller.cseq = d.caller.cseq.max(seq);
                    } else if let Some(c) = d.callee.as_mut()
                        && *method != Method::Ack
                    {
                        c.cseq = c.cseq.max(seq);
                    }
                }
            }
        }
    }

    pub(super) fn track_response_dialog(
        &mut self,
        now: Instant,
        msg: &Message,
        code: u16,
        from: Flow,
    ) {
        let Ok(call_id) = msg.call_id().map(str::to_string) else {
            return;
        };
        if !self.dialogs.contains_key(&call_id) {
            return;
        }
        let (_, towards_callee) = self.split_record_route(msg);
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
            d.callee = Some(Side {
                identity: msg.get("To").unwrap_or_default().to_string(),
                target: target_of(msg).unwrap_or(Uri::Other(String::new())),
                flow: from,
                route: towards_callee,
                cseq: 0,
            });
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
            self.media.end(now, &call_id, &mut self.events);
        }
    }

    /// Dialogs not seen for the dialog timeout end (the BYE was lost, or a UA vanished).
    pub(super) fn expire_dialogs(&mut self, now: Instant) {
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
                self.media.end(now, &call_id, &mut self.events);
            }
        }
    }
}
