//! An in-memory ng peer for tests and fuzz targets (test code only): it answers the
//! proxy's ng `offer`/`answer` by rewriting the SDP with `relay::sdp::rewrite_offer` /
//! `rewrite_answer` through any `MediaControl` (a toy port allocator), `delete` by
//! `end_session`, `ping` by `pong`; with the reply cache by cookie and, when a secret is
//! set, `auth` on everything. Used by `relay/tests/sip_proxy_media.rs` and the
//! `sip_proxy` fuzz body.

#![allow(dead_code)] // each includer uses its part

use relay::control::ng::{
    AUTH_FAILED, Ice, NgCommand, NgError, NgMessage, NgReply, OfferAnswer, REPLY_CACHE_TTL,
    ReplyCache, decode, encode_reply,
};
use relay::sdp::{MediaControl, Party, Sdp, SessionKey, rewrite_answer, rewrite_offer};
use std::collections::BTreeMap;
use std::time::Instant;

/// The peer.
pub struct NgTestRelay<M> {
    /// The media controller that allocates and frees.
    pub control: M,
    /// The shared secret, if any.
    pub secret: Option<Vec<u8>>,
    /// Every command served (first copies only), in order.
    pub commands: Vec<NgCommand>,
    /// Call-ID → the caller's tag (the first offer's writer).
    callers: BTreeMap<String, String>,
    cache: ReplyCache,
}

impl<M: MediaControl> NgTestRelay<M> {
    /// A peer over `control`.
    pub fn new(control: M, secret: Option<&[u8]>) -> Self {
        NgTestRelay {
            control,
            secret: secret.map(<[u8]>::to_vec),
            commands: Vec::new(),
            callers: BTreeMap::new(),
            cache: ReplyCache::new(REPLY_CACHE_TTL),
        }
    }

    /// The reply to a datagram, if it deserves one (a reply to us gets none).
    pub fn serve(&mut self, now: Instant, datagram: &[u8]) -> Option<Vec<u8>> {
        let received = decode(datagram, self.secret.as_deref()).ok()?;
        if let Some(cached) = self.cache.get(now, &received.cookie) {
            return Some(cached.to_vec());
        }
        let reply = match received.message {
            Ok(NgMessage::Reply(_)) => return None,
            Err(NgError::Auth) => NgReply::error(AUTH_FAILED),
            Err(e) => NgReply::error(e.to_string()),
            Ok(NgMessage::Request(command)) => {
                self.commands.push(command.clone());
                self.run(command)
            }
        };
        let bytes = encode_reply(&received.cookie, &reply, self.secret.as_deref());
        self.cache.insert(now, &received.cookie, bytes.clone());
        Some(bytes)
    }

    fn run(&mut self, command: NgCommand) -> NgReply {
        match command {
            NgCommand::Ping => NgReply::Pong,
            NgCommand::Offer(oa) => self.rewrite(true, &oa),
            NgCommand::Answer(oa) => self.rewrite(false, &oa),
            NgCommand::Delete(d) => {
                let caller = self.callers.remove(&d.call_id);
                let from_tag = d.from_tag.or(caller).unwrap_or_default();
                self.control.end_session(SessionKey {
                    call_id: &d.call_id,
                    from_tag: &from_tag,
                    to_tag: d.to_tag.as_deref(),
                });
                NgReply::ok()
            }
            other => NgReply::error(format!("{} is not served here", other.name())),
        }
    }

    fn rewrite(&mut self, offer: bool, oa: &OfferAnswer) -> NgReply {
        // rtpengine's tags: from-tag is the offerer's; in an answer to-tag the answerer's
        let writer = if offer {
            oa.from_tag.clone()
        } else {
            oa.to_tag.clone().unwrap_or_default()
        };
        let caller = self
            .callers
            .entry(oa.call_id.clone())
            .or_insert_with(|| match (offer, &oa.to_tag) {
                // a first offer from the callee (in a 2xx to an offerless INVITE)
                (true, Some(other)) => other.clone(),
                _ => oa.from_tag.clone(),
            })
            .clone();
        let (party, callee) = if writer == caller {
            let other = if offer {
                oa.to_tag.clone()
            } else {
                Some(oa.from_tag.clone())
            };
            (Party::Caller, other)
        } else {
            (Party::Callee, Some(writer.clone()))
        };
        let Ok(mut sdp) = Sdp::parse(&oa.sdp) else {
            return NgReply::error("invalid SDP");
        };
        let session = SessionKey {
            call_id: &oa.call_id,
            from_tag: &caller,
            to_tag: callee.as_deref(),
        };
        let ice = Ice::policy(oa.ice.as_ref());
        let result = if offer {
            rewrite_offer(&mut sdp, session, party, ice, &mut self.control)
        } else {
            rewrite_answer(&mut sdp, session, party, ice, &mut self.control)
        };
        match result {
            Ok(_) => NgReply::Ok {
                sdp: Some(sdp.to_bytes()),
                extra: Default::default(),
            },
            Err(e) => NgReply::error(e.to_string()),
        }
    }
}
