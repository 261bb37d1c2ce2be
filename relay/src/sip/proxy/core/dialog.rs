//! Dialog tracking (RFC 3261 §12): a call's dialog starts with its initial INVITE, is
//! confirmed by a 2xx, and ends on BYE, on a failure or CANCEL (487), or when nothing of
//! it has been seen for the dialog timeout; its media session ends with it.

use super::*;

/// What the proxy keeps of a dialog: enough to say who ended it and when it times out.
#[derive(Debug, Clone)]
pub(super) struct Dialog {
    from_tag: String,
    pub(super) confirmed: bool,
    deadline: Instant,
}

impl Proxy {
    /// Live dialogs.
    pub fn dialog_count(&self) -> usize {
        self.dialogs.len()
    }

    pub(super) fn track_request_dialog(&mut self, now: Instant, msg: &Message, method: &Method) {
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

    pub(super) fn track_response_dialog(&mut self, _now: Instant, msg: &Message, code: u16) {
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
                self.media.end(&call_id, &mut self.events);
            }
        }
    }
}
