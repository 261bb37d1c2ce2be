//! A sans-IO registrar (RFC 3261 §10.3): bindings per address-of-record with expiry,
//! several contacts per AOR, `Contact: *` removal, 423 Interval Too Brief, and — for NATed
//! UAs — the source flow of the REGISTER stored with each binding (the path back through
//! the NAT, as nathelper's `received` / RFC 5626's flow), used instead of the Contact
//! address when the proxy forwards requests to the UA.

use super::headers::{Contacts, NameAddr};
use super::message::Message;
use super::transport::Flow;
use super::uri::SipUri;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// Registrar settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistrarConfig {
    /// Shortest accepted expiry; shorter non-zero requests get 423 with Min-Expires
    /// (RFC 3261 §10.3 step 7).
    pub min_expires: u32,
    /// Longest granted expiry (longer requests are shortened).
    pub max_expires: u32,
    /// Expiry when the REGISTER names none (RFC 3261 §10.2.1.1 suggests 3600).
    pub default_expires: u32,
    /// Most contacts per AOR; the oldest is replaced beyond it.
    pub max_contacts: usize,
}

impl Default for RegistrarConfig {
    fn default() -> RegistrarConfig {
        RegistrarConfig {
            min_expires: 60,
            max_expires: 3600,
            default_expires: 3600,
            max_contacts: 8,
        }
    }
}

/// One binding of an AOR to a contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The Contact as the UA registered it.
    pub contact: NameAddr,
    /// Its SIP URI without a `?headers` component (the target of requests for the AOR).
    pub uri: SipUri,
    /// Where the REGISTER came from: requests for this binding are sent here.
    pub path: Flow,
    /// Whether a NAT test hit on the REGISTER (keepalives go to NATed bindings).
    pub natted: bool,
    /// When it lapses.
    pub expires_at: Instant,
    /// Call-ID and CSeq of the last REGISTER that touched it (RFC 3261 §10.3 step 7).
    pub call_id: String,
    /// See `call_id`.
    pub cseq: u32,
    /// Unanswered keepalives in a row.
    pub missed_keepalives: u32,
}

/// Why a binding went away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemovalReason {
    /// Its expiry passed.
    Expired,
    /// The UA removed it (expires=0 or `*`).
    Unregistered,
    /// Keepalives went unanswered or failed at the transport layer, or the NATed
    /// connection it was registered over closed.
    Unreachable,
    /// Replaced because the AOR had too many contacts.
    Replaced,
}

/// What the registrar did with a REGISTER; the proxy turns it into the response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisterOutcome {
    /// 200 OK listing the current bindings with their remaining seconds.
    Ok {
        /// Every binding of the AOR after the update: (Contact, seconds left).
        bindings: Vec<(NameAddr, u32)>,
        /// Bindings added or refreshed: (AOR, contact URI, seconds).
        added: Vec<(String, String, u32)>,
        /// Bindings removed: (AOR, contact URI).
        removed: Vec<(String, String)>,
    },
    /// 423 Interval Too Brief with this Min-Expires.
    IntervalTooBrief(u32),
    /// 400 Bad Request.
    BadRequest(&'static str),
}

/// The binding store.
#[derive(Debug, Clone, Default)]
pub struct Registrar {
    config: RegistrarConfig,
    aors: BTreeMap<String, Vec<Binding>>,
    /// (expiry, AOR, contact URI): lazily checked against the binding's current expiry.
    expiry: BTreeSet<(Instant, String, String)>,
}

impl Registrar {
    /// An empty registrar.
    pub fn new(config: RegistrarConfig) -> Registrar {
        Registrar {
            config,
            ..Registrar::default()
        }
    }

    /// The settings.
    pub fn config(&self) -> &RegistrarConfig {
        &self.config
    }

    /// Whether `aor` was ever registered (RFC 3261 §16.5: 480 rather than 404 when a known
    /// user has no binding now).
    pub fn knows(&self, aor: &str) -> bool {
        self.aors.contains_key(aor)
    }

    /// The live bindings of `aor` (most recently registered last).
    pub fn lookup(&self, aor: &str) -> &[Binding] {
        self.aors.get(aor).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The binding whose contact URI (its text) is `uri`.
    pub fn find_by_contact(&self, uri: &str) -> Option<(&str, &Binding)> {
        self.aors.iter().find_map(|(aor, bs)| {
            bs.iter()
                .find(|b| b.uri.to_string() == uri)
                .map(|b| (aor.as_str(), b))
        })
    }

    /// Every binding (AOR, binding).
    pub fn bindings(&self) -> impl Iterator<Item = (&str, &Binding)> {
        self.aors
            .iter()
            .flat_map(|(a, bs)| bs.iter().map(move |b| (a.as_str(), b)))
    }

    /// Number of live bindings.
    pub fn binding_count(&self) -> usize {
        self.aors.values().map(Vec::len).sum()
    }

    /// Apply a REGISTER (RFC 3261 §10.3 steps 5–8) received over `path`.
    pub fn handle_register(
        &mut self,
        now: Instant,
        req: &Message,
        path: Flow,
        natted: bool,
    ) -> RegisterOutcome {
        let Some(to_uri) = req.to().ok().and_then(|t| t.uri.sip().cloned()) else {
            return RegisterOutcome::BadRequest("To is not a SIP URI");
        };
        let aor = to_uri.aor();
        let (Ok(call_id), Ok(cseq)) = (req.call_id(), req.cseq()) else {
            return RegisterOutcome::BadRequest("no Call-ID/CSeq");
        };
        let header_expires = req.expires();
        let mut added = Vec::new();
        let mut removed = Vec::new();
        match req.contacts() {
            Err(_) => return RegisterOutcome::BadRequest("malformed Contact"),
            Ok(Contacts::Star) => {
                // step 6: only with Expires: 0
                if header_expires != Some(0) {
                    return RegisterOutcome::BadRequest("Contact: * without Expires: 0");
                }
                if let Some(bs) = self.aors.get_mut(&aor) {
                    for b in bs.drain(..) {
                        removed.push((aor.clone(), b.uri.to_string()));
                    }
                }
            }
            Ok(Contacts::List(list)) => {
                // step 7, first pass: the 423 check before changing anything
                let mut wanted = Vec::new();
                for c in list {
                    let Some(mut uri) = c.uri.sip().cloned() else {
                        return RegisterOutcome::BadRequest("Contact is not a SIP URI");
                    };
                    // The binding's target is used as a Request-URI, where a headers
                    // component is not allowed (RFC 3261 §19.1.1 table 1, §19.1.5): keep
                    // it in the Contact as registered, not in the target.
                    uri.headers = None;
                    let e = c
                        .expires_param()
                        .or(header_expires)
                        .unwrap_or(self.config.default_expires);
                    if e != 0 && e < self.config.min_expires {
                        return RegisterOutcome::IntervalTooBrief(self.config.min_expires);
                    }
                    wanted.push((c, uri, e.min(self.config.max_expires)));
                }
                let bs = self.aors.entry(aor.clone()).or_default();
                for (c, uri, e) in wanted {
                    let key = uri.to_string();
                    let existing = bs.iter().position(|b| b.uri.to_string() == key);
                    if let Some(i) = existing
                        && bs[i].call_id == call_id
                        && bs[i].cseq >= cseq.seq
                    {
                        continue; // an old or repeated REGISTER (step 7): no change
                    }
                    if e == 0 {
                        if let Some(i) = existing {
                            bs.remove(i);
                            removed.push((aor.clone(), key));
                        }
                        continue;
                    }
                    let expires_at = now + Duration::from_secs(u64::from(e));
                    let b = Binding {
                        contact: c,
                        uri,
                        path,
                        natted,
                        expires_at,
                        call_id: call_id.to_string(),
                        cseq: cseq.seq,
                        missed_keepalives: 0,
                    };
                    match existing {
                        Some(i) => {
                            bs.remove(i);
                        }
                        None if bs.len() >= self.config.max_contacts => {
                            let old = bs.remove(0);
                            removed.push((aor.clone(), old.uri.to_string()));
                        }
                        None => {}
                    }
                    bs.push(b);
                    self.expiry.insert((expires_at, aor.clone(), key.clone()));
                    added.push((aor.clone(), key, e));
                }
            }
        }
        let bindings = self
            .lookup(&aor)
            .iter()
            .map(|b| {
                let left = b.expires_at.saturating_duration_since(now).as_secs();
                (b.contact.clone(), u32::try_from(left).unwrap_or(u32::MAX))
            })
            .collect();
        RegisterOutcome::Ok {
            bindings,
            added,
            removed,
        }
    }

    /// Remove one binding (keepalive failure); returns whether it existed.
    pub fn remove(&mut self, aor: &str, contact_uri: &str) -> bool {
        let Some(bs) = self.aors.get_mut(aor) else {
            return false;
        };
        let before = bs.len();
        bs.retain(|b| b.uri.to_string() != contact_uri);
        before != bs.len()
    }

    /// A binding, mutably (keepalive bookkeeping).
    pub fn binding_mut(&mut self, aor: &str, contact_uri: &str) -> Option<&mut Binding> {
        self.aors
            .get_mut(aor)?
            .iter_mut()
            .find(|b| b.uri.to_string() == contact_uri)
    }

    /// The earliest pending expiry.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.expiry.first().map(|(t, _, _)| *t)
    }

    /// Drop the bindings whose expiry is at or before `now`; returns (AOR, contact URI).
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<(String, String)> {
        let mut gone = Vec::new();
        while let Some((t, aor, uri)) = self.expiry.first().cloned() {
            if t > now {
                break;
            }
            self.expiry.pop_first();
            if let Some(bs) = self.aors.get_mut(&aor)
                && let Some(i) = bs
                    .iter()
                    .position(|b| b.expires_at == t && b.uri.to_string() == uri)
            {
                bs.remove(i);
                gone.push((aor, uri));
            }
        }
        gone
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::sip::transport::Transport;

    fn flow() -> Flow {
        Flow {
            transport: Transport::Udp,
            local: "203.0.113.1:5060".parse().unwrap(),
            remote: "198.51.100.20:40000".parse().unwrap(),
            conn: None,
        }
    }

    fn register(cseq: u32, contacts: &str, expires: Option<u32>) -> Message {
        let e = expires
            .map(|e| format!("Expires: {e}\r\n"))
            .unwrap_or_default();
        Message::parse(
            format!(
                "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK{cseq}\r\n\
                 From: <sip:a@example.com>;tag=1\r\nTo: <sip:a@Example.COM>\r\nCall-ID: r\r\n\
                 CSeq: {cseq} REGISTER\r\nContact: {contacts}\r\n{e}Content-Length: 0\r\n\r\n"
            )
            .as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn several_contacts_expiry_and_star() {
        let mut r = Registrar::new(RegistrarConfig::default());
        #[allow(clippy::disallowed_methods)] // the test clock origin
        let t0 = Instant::now();
        let m = register(
            1,
            "<sip:a@10.0.0.1>;expires=100, <sip:a@10.0.0.2>",
            Some(7200),
        );
        let RegisterOutcome::Ok {
            bindings, added, ..
        } = r.handle_register(t0, &m, flow(), true)
        else {
            panic!()
        };
        assert_eq!(bindings.len(), 2);
        // the contact parameter wins over the header; the header is clamped to max
        assert_eq!(added[0].2, 100);
        assert_eq!(added[1].2, 3600);
        assert_eq!(
            r.lookup("a@example.com").len(),
            2,
            "host compared case-insensitively"
        );
        assert_eq!(r.poll_timeout(), Some(t0 + Duration::from_secs(100)));
        let gone = r.handle_timeout(t0 + Duration::from_secs(100));
        assert_eq!(
            gone,
            vec![("a@example.com".into(), "sip:a@10.0.0.1".into())]
        );
        // an old CSeq from the same Call-ID changes nothing
        let old = register(1, "<sip:a@10.0.0.2>", Some(0));
        r.handle_register(t0, &old, flow(), true);
        assert_eq!(r.binding_count(), 1);
        // 423
        assert_eq!(
            r.handle_register(t0, &register(2, "<sip:a@10.0.0.3>", Some(5)), flow(), true),
            RegisterOutcome::IntervalTooBrief(60)
        );
        // `*` needs Expires: 0
        assert!(matches!(
            r.handle_register(t0, &register(3, "*", Some(5)), flow(), true),
            RegisterOutcome::BadRequest(_)
        ));
        let RegisterOutcome::Ok { removed, .. } =
            r.handle_register(t0, &register(4, "*", Some(0)), flow(), true)
        else {
            panic!()
        };
        assert_eq!(removed.len(), 1);
        assert_eq!(r.binding_count(), 0);
        assert!(r.knows("a@example.com"));
        // the refreshed binding's stale expiry entry fires without effect
        assert!(
            r.handle_timeout(t0 + Duration::from_secs(10_000))
                .is_empty()
        );
    }
}
