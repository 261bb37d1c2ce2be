//! The commands and replies of rtpengine's "ng" control protocol, typed, over the
//! [`super::bencode`] codec; the shared-secret `auth` of pinhole's peers; and the
//! reply cache that makes a retransmitted (or replayed) request change nothing.
//!
//! # Commands
//!
//! A request is a dictionary with `command` and the command's keys; the reply has
//! `result` (`pong`, `ok` or `error` with `error-reason`). The keys read are rtpengine's
//! (`daemon/call_interfaces.c`) as Kamailio's and OpenSIPS's `rtpengine` modules send them:
//!
//! | command | keys | reply |
//! |---|---|---|
//! | `ping` | — | `pong` |
//! | `offer`, `answer` | `call-id`, `from-tag`, `to-tag`, `via-branch`, `sdp`, `received-from` (`[IP4\|IP6, address]`), `flags`, `replace`, `ICE`, `rtcp-mux`, `direction`, `transport-protocol` | `ok` + `sdp` |
//! | `delete` | `call-id`, `from-tag`, `to-tag`, `via-branch` | `ok` |
//! | `query` | `call-id`, `from-tag`, `to-tag` | `ok` + totals |
//! | `list` | `limit` | `ok` + `calls` |
//!
//! rtpengine's tag semantics: in an `offer` `from-tag` is the offerer's tag; in an
//! `answer` `from-tag` is still the offerer's and `to-tag` the answerer's (Kamailio swaps
//! From and To tags for requests sent by the callee, so this holds in both directions).
//! Keys are matched with rtpengine's leniency: a space or an underscore stands for a
//! dash (`received from` is `received-from`). Every key not named here — `record call`,
//! `label`, `metadata`, `DTLS`, `SDES`, … — is kept in `extra` and sent on again when the
//! command is emitted; none is an error.
//!
//! pinhole's extensions (only pinhole peers send them; rtpengine ignores unknown keys):
//! `user-agent` (text: the relay's asymmetric-clients list matches it),
//! `received-from-port` (integer: the signalling source port as the proxy saw it, which
//! with `received-from` names the party's NAT binding), `ice-priority` (`lowest` |
//! `highest`: RFC 8445 §5.1.2 priority of the relay candidate), and two commands:
//! `media-ended {call-id, from-tag, reason}` sent by a relay (or a dispatcher) to the
//! control client that created the session when the session ended on its own (idle
//! timeout), answered `ok`; and `drain` (the relay takes no new session), answered `ok`.
//!
//! # Authentication
//!
//! When a shared secret is configured every message (request and reply) carries `auth`:
//! the lowercase hex HMAC-SHA256 (RFC 2104, FIPS 180-4) under the secret of the cookie, a
//! space, and the canonical bencoding (keys sorted) of the dictionary without `auth`
//! ([`sign`], [`verify`]). The MAC covers the cookie, so a message cannot be moved to
//! another transaction; a replayed request repeats a cookie and gets the cached reply
//! ([`ReplyCache`]), so a replay changes nothing. A server answers a request without a
//! valid `auth` with `{result: error, error-reason: "authentication failed"}`
//! ([`AUTH_FAILED`]).

use super::bencode::{self, Value};
use hmac::{Hmac, KeyInit, Mac};
use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// The `error-reason` of a request refused for a missing or wrong `auth`.
pub const AUTH_FAILED: &str = "authentication failed";

/// How long a reply stays cached for its cookie (rtpengine keeps its cookie cache 30 s).
pub const REPLY_CACHE_TTL: Duration = Duration::from_secs(30);

/// The keys of a dictionary other than the ones a typed command or reply reads.
pub type Extra = BTreeMap<Vec<u8>, Value>;

/// What the `ICE` key asks of the relay (rtpengine's values, kept when unknown).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Ice {
    /// `remove`: strip every ICE attribute (pinhole's `sip-proxy.ice: strip`).
    Remove,
    /// `force`: the relay's own candidates replace the endpoint's.
    Force,
    /// `force-relay` (also `force_relay`): the relay is added as a `typ relay` candidate
    /// next to the endpoint's own (pinhole's `sip-proxy.ice: add-relay-candidate`; pinhole's
    /// relay also points `c=`/`m=` at itself, rtpengine leaves them).
    ForceRelay,
    /// Any other value, as sent (`default`, `optional`, `passive`, …).
    Other(String),
}

impl Ice {
    fn parse(s: &str) -> Ice {
        match s {
            "remove" => Ice::Remove,
            "force" => Ice::Force,
            "force-relay" | "force_relay" => Ice::ForceRelay,
            other => Ice::Other(other.to_string()),
        }
    }

    /// The value sent.
    pub fn as_str(&self) -> &str {
        match self {
            Ice::Remove => "remove",
            Ice::Force => "force",
            Ice::ForceRelay => "force-relay",
            Ice::Other(s) => s,
        }
    }

    /// The `ICE` key for pinhole's `sip-proxy.ice` policy: `strip` → `remove`,
    /// `add-relay-candidate` → `force-relay`, `passthrough` → no key (a relay then leaves
    /// ICE attributes as they are).
    pub fn for_policy(policy: crate::sdp::IcePolicy) -> Option<Ice> {
        match policy {
            crate::sdp::IcePolicy::Strip => Some(Ice::Remove),
            crate::sdp::IcePolicy::AddRelayCandidate => Some(Ice::ForceRelay),
            crate::sdp::IcePolicy::Passthrough => None,
        }
    }

    /// The inverse of [`Ice::for_policy`] for a pinhole relay: no key or a value it does
    /// not implement → `passthrough`; `force` is served as `add-relay-candidate` (the relay
    /// has no full ICE agent of its own).
    pub fn policy(ice: Option<&Ice>) -> crate::sdp::IcePolicy {
        match ice {
            Some(Ice::Remove) => crate::sdp::IcePolicy::Strip,
            Some(Ice::Force | Ice::ForceRelay) => crate::sdp::IcePolicy::AddRelayCandidate,
            Some(Ice::Other(_)) | None => crate::sdp::IcePolicy::Passthrough,
        }
    }
}

/// Where the relay candidate goes among the endpoint's (pinhole's `ice-priority`): the
/// SDP rewrite's own type.
pub use crate::sdp::IcePriority;

/// The keys of an `offer` or `answer`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OfferAnswer {
    /// `call-id`.
    pub call_id: String,
    /// `from-tag`: the offerer's tag (in an answer too).
    pub from_tag: String,
    /// `to-tag`: the other party's tag when known (in an answer, the answerer's).
    pub to_tag: Option<String>,
    /// `via-branch`: Kamailio's way to tell forked branches apart.
    pub via_branch: Option<String>,
    /// `sdp`: the description to rewrite.
    pub sdp: Vec<u8>,
    /// `received-from`: the signalling source address of the party that wrote `sdp`.
    pub received_from: Option<IpAddr>,
    /// `received-from-port` (pinhole): that source's port.
    pub received_from_port: Option<u16>,
    /// `user-agent` (pinhole): the writer's User-Agent (or Server) header.
    pub user_agent: Option<String>,
    /// `flags` (`trust-address`, `symmetric`, `asymmetric`, `strict-source`, …).
    pub flags: Vec<String>,
    /// `replace` (`origin`, `session-connection`).
    pub replace: Vec<String>,
    /// `ICE`.
    pub ice: Option<Ice>,
    /// `ice-priority` (pinhole).
    pub ice_priority: Option<IcePriority>,
    /// `rtcp-mux` (`offer`, `demux`, `accept`, `reject`, `require`).
    pub rtcp_mux: Vec<String>,
    /// `direction` (interface names, two at most).
    pub direction: Vec<String>,
    /// `transport-protocol` (`RTP/AVP`, `RTP/SAVPF`, …).
    pub transport_protocol: Option<String>,
    /// Every other key, as sent.
    pub extra: Extra,
}

/// The keys of `delete` and `query`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CallRef {
    /// `call-id`.
    pub call_id: String,
    /// `from-tag` (`delete` without it ends the whole call).
    pub from_tag: Option<String>,
    /// `to-tag`.
    pub to_tag: Option<String>,
    /// `via-branch`.
    pub via_branch: Option<String>,
    /// Every other key, as sent (`delete delay`, `flags`, …).
    pub extra: Extra,
}

/// A command (the dictionary of a request).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NgCommand {
    /// `ping`: liveness (a dispatcher's health check).
    Ping,
    /// `offer`: rewrite an offer (RFC 3264 §5), creating or updating the session.
    Offer(OfferAnswer),
    /// `answer`: rewrite the answer (RFC 3264 §6).
    Answer(OfferAnswer),
    /// `delete`: the call (or one party of it) is over.
    Delete(CallRef),
    /// `query`: a call's counters.
    Query(CallRef),
    /// `list`: the Call-IDs of running calls, at most `limit` (rtpengine's default 32).
    List {
        /// `limit`.
        limit: Option<u64>,
    },
    /// `media-ended` (pinhole): the relay ended a session on its own; sent to the control
    /// client that created it.
    MediaEnded {
        /// `call-id`.
        call_id: String,
        /// `from-tag` (the caller's).
        from_tag: String,
        /// `reason` (`idle-timeout`, `idle-timeout-before-media`, `relay-lost`, …).
        reason: String,
    },
    /// `drain` (pinhole): take no new session; exit after the last one ends.
    Drain,
}

/// A reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NgReply {
    /// `{result: pong}`.
    Pong,
    /// `{result: ok}`, with the rewritten `sdp` of an offer or answer and any other keys
    /// (`calls` of `list`, `totals`/`created`/`streams` of `query`, `warning`, …).
    Ok {
        /// `sdp`.
        sdp: Option<Vec<u8>>,
        /// The other keys.
        extra: Extra,
    },
    /// `{result: error, error-reason}`.
    Error {
        /// `error-reason`.
        reason: String,
    },
}

impl NgReply {
    /// `{result: ok}` with nothing else.
    pub fn ok() -> NgReply {
        NgReply::Ok {
            sdp: None,
            extra: Extra::new(),
        }
    }

    /// `{result: error, error-reason: reason}`.
    pub fn error(reason: impl Into<String>) -> NgReply {
        NgReply::Error {
            reason: reason.into(),
        }
    }
}

/// Why a dictionary is not a command or a reply this module reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NgError {
    /// The datagram is not `COOKIE SP bencode`.
    #[error("{0}")]
    Bencode(#[from] bencode::Error),
    /// The message is not a dictionary.
    #[error("ng: the message is not a dictionary")]
    NotADictionary,
    /// Neither `command` nor `result`.
    #[error("ng: the message has neither `command` nor `result`")]
    NoCommand,
    /// A command this side does not know.
    #[error("ng: unrecognised command `{0}`")]
    UnknownCommand(String),
    /// A `result` other than `ok`, `pong`, `error`.
    #[error("ng: unrecognised result `{0}`")]
    UnknownResult(String),
    /// A key the command needs is absent.
    #[error("ng: `{0}` is missing")]
    Missing(&'static str),
    /// A key has the wrong type or an unusable value.
    #[error("ng: `{0}` has an invalid value")]
    Invalid(&'static str),
    /// `auth` is absent or does not verify.
    #[error("ng: {AUTH_FAILED}")]
    Auth,
}

/// The keys the typed commands read (dash form); everything else is `extra`.
const OFFER_KEYS: &[&str] = &[
    "command",
    "auth",
    "call-id",
    "from-tag",
    "to-tag",
    "via-branch",
    "sdp",
    "received-from",
    "received-from-port",
    "user-agent",
    "flags",
    "replace",
    "ICE",
    "ice-priority",
    "rtcp-mux",
    "direction",
    "transport-protocol",
];
const REF_KEYS: &[&str] = &[
    "command",
    "auth",
    "call-id",
    "from-tag",
    "to-tag",
    "via-branch",
];
const REPLY_KEYS: &[&str] = &["result", "auth", "sdp", "error-reason"];

/// rtpengine's key leniency: a space or an underscore stands for a dash.
fn normalize(key: &[u8]) -> Vec<u8> {
    key.iter()
        .map(|&b| if b == b' ' || b == b'_' { b'-' } else { b })
        .collect()
}

/// A dictionary read by normalized key.
struct Dict<'a> {
    map: &'a BTreeMap<Vec<u8>, Value>,
}

impl<'a> Dict<'a> {
    fn new(v: &'a Value) -> Result<Dict<'a>, NgError> {
        match v {
            Value::Dict(map) => Ok(Dict { map }),
            _ => Err(NgError::NotADictionary),
        }
    }

    /// The value of `key` (any spelling); the first in key order when spelt twice.
    fn get(&self, key: &'static str) -> Option<&'a Value> {
        if let Some(v) = self.map.get(key.as_bytes()) {
            return Some(v);
        }
        self.map
            .iter()
            .find(|(k, _)| normalize(k) == key.as_bytes())
            .map(|(_, v)| v)
    }

    fn text(&self, key: &'static str) -> Result<Option<String>, NgError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bytes(b)) => String::from_utf8(b.clone())
                .map(Some)
                .map_err(|_| NgError::Invalid(key)),
            Some(_) => Err(NgError::Invalid(key)),
        }
    }

    fn required(&self, key: &'static str) -> Result<String, NgError> {
        self.text(key)?.ok_or(NgError::Missing(key))
    }

    fn list(&self, key: &'static str) -> Result<Vec<String>, NgError> {
        match self.get(key) {
            None => Ok(Vec::new()),
            Some(Value::List(items)) => items
                .iter()
                .map(|v| v.as_str().map(str::to_string).ok_or(NgError::Invalid(key)))
                .collect(),
            Some(_) => Err(NgError::Invalid(key)),
        }
    }

    fn extra(&self, known: &[&str]) -> Extra {
        self.map
            .iter()
            .filter(|(k, _)| {
                let n = normalize(k);
                !known.iter().any(|kn| kn.as_bytes() == n.as_slice())
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

impl OfferAnswer {
    fn parse(d: &Dict<'_>) -> Result<OfferAnswer, NgError> {
        let received_from = match d.get("received-from") {
            None => None,
            Some(Value::List(items)) => {
                let family = items.first().and_then(Value::as_str);
                let addr = items.get(1).and_then(Value::as_str);
                let ip: IpAddr = addr
                    .and_then(|a| a.parse().ok())
                    .ok_or(NgError::Invalid("received-from"))?;
                let fits = match family {
                    Some("IP4") => ip.is_ipv4(),
                    Some("IP6") => ip.is_ipv6(),
                    _ => false,
                };
                if !fits || items.len() != 2 {
                    return Err(NgError::Invalid("received-from"));
                }
                Some(ip)
            }
            Some(_) => return Err(NgError::Invalid("received-from")),
        };
        let received_from_port = match d.get("received-from-port") {
            None => None,
            Some(Value::Int(n)) => {
                Some(u16::try_from(*n).map_err(|_| NgError::Invalid("received-from-port"))?)
            }
            Some(_) => return Err(NgError::Invalid("received-from-port")),
        };
        let sdp = match d.get("sdp") {
            Some(Value::Bytes(b)) => b.clone(),
            Some(_) => return Err(NgError::Invalid("sdp")),
            None => return Err(NgError::Missing("sdp")),
        };
        let ice_priority = match d.text("ice-priority")? {
            None => None,
            Some(s) => Some(IcePriority::from_keyword(&s).ok_or(NgError::Invalid("ice-priority"))?),
        };
        Ok(OfferAnswer {
            call_id: d.required("call-id")?,
            from_tag: d.required("from-tag")?,
            to_tag: d.text("to-tag")?,
            via_branch: d.text("via-branch")?,
            sdp,
            received_from,
            received_from_port,
            user_agent: d.text("user-agent")?,
            flags: d.list("flags")?,
            replace: d.list("replace")?,
            ice: d.text("ICE")?.map(|s| Ice::parse(&s)),
            ice_priority,
            rtcp_mux: d.list("rtcp-mux")?,
            direction: d.list("direction")?,
            transport_protocol: d.text("transport-protocol")?,
            extra: d.extra(OFFER_KEYS),
        })
    }

    fn emit(&self, map: &mut BTreeMap<Vec<u8>, Value>) {
        map.extend(self.extra.clone());
        put(map, "call-id", Value::text(&self.call_id));
        put(map, "from-tag", Value::text(&self.from_tag));
        put_opt(map, "to-tag", &self.to_tag);
        put_opt(map, "via-branch", &self.via_branch);
        put(map, "sdp", Value::Bytes(self.sdp.clone()));
        if let Some(ip) = self.received_from {
            let family = if ip.is_ipv4() { "IP4" } else { "IP6" };
            put(
                map,
                "received-from",
                Value::List(vec![Value::text(family), Value::text(&ip.to_string())]),
            );
        }
        if let Some(p) = self.received_from_port {
            put(map, "received-from-port", Value::Int(i64::from(p)));
        }
        put_opt(map, "user-agent", &self.user_agent);
        put_list(map, "flags", &self.flags);
        put_list(map, "replace", &self.replace);
        if let Some(ice) = &self.ice {
            put(map, "ICE", Value::text(ice.as_str()));
        }
        if let Some(p) = self.ice_priority {
            put(map, "ice-priority", Value::text(p.as_str()));
        }
        put_list(map, "rtcp-mux", &self.rtcp_mux);
        put_list(map, "direction", &self.direction);
        put_opt(map, "transport-protocol", &self.transport_protocol);
    }
}

impl CallRef {
    fn parse(d: &Dict<'_>) -> Result<CallRef, NgError> {
        Ok(CallRef {
            call_id: d.required("call-id")?,
            from_tag: d.text("from-tag")?,
            to_tag: d.text("to-tag")?,
            via_branch: d.text("via-branch")?,
            extra: d.extra(REF_KEYS),
        })
    }

    fn emit(&self, map: &mut BTreeMap<Vec<u8>, Value>) {
        map.extend(self.extra.clone());
        put(map, "call-id", Value::text(&self.call_id));
        put_opt(map, "from-tag", &self.from_tag);
        put_opt(map, "to-tag", &self.to_tag);
        put_opt(map, "via-branch", &self.via_branch);
    }
}

fn put(map: &mut BTreeMap<Vec<u8>, Value>, key: &str, v: Value) {
    map.insert(key.as_bytes().to_vec(), v);
}

fn put_opt(map: &mut BTreeMap<Vec<u8>, Value>, key: &str, v: &Option<String>) {
    if let Some(s) = v {
        put(map, key, Value::text(s));
    }
}

fn put_list(map: &mut BTreeMap<Vec<u8>, Value>, key: &str, items: &[String]) {
    if !items.is_empty() {
        put(
            map,
            key,
            Value::List(items.iter().map(|s| Value::text(s)).collect()),
        );
    }
}

impl NgCommand {
    /// The command's name (the `command` value).
    pub fn name(&self) -> &'static str {
        match self {
            NgCommand::Ping => "ping",
            NgCommand::Offer(_) => "offer",
            NgCommand::Answer(_) => "answer",
            NgCommand::Delete(_) => "delete",
            NgCommand::Query(_) => "query",
            NgCommand::List { .. } => "list",
            NgCommand::MediaEnded { .. } => "media-ended",
            NgCommand::Drain => "drain",
        }
    }

    /// The command a request dictionary carries (`auth` is not checked here: [`verify`]).
    ///
    /// # Errors
    ///
    /// Not a dictionary, no or an unknown `command`, a key the command needs missing,
    /// or a known key with an unusable value ([`NgError`]). Unknown keys are no error.
    pub fn parse(message: &Value) -> Result<NgCommand, NgError> {
        let d = Dict::new(message)?;
        let command = d.text("command")?.ok_or(NgError::NoCommand)?;
        Ok(match command.as_str() {
            "ping" => NgCommand::Ping,
            "offer" => NgCommand::Offer(OfferAnswer::parse(&d)?),
            "answer" => NgCommand::Answer(OfferAnswer::parse(&d)?),
            "delete" => NgCommand::Delete(CallRef::parse(&d)?),
            "query" => NgCommand::Query(CallRef::parse(&d)?),
            "list" => NgCommand::List {
                limit: match d.get("limit") {
                    None => None,
                    Some(Value::Int(n)) => {
                        Some(u64::try_from(*n).map_err(|_| NgError::Invalid("limit"))?)
                    }
                    Some(_) => return Err(NgError::Invalid("limit")),
                },
            },
            "media-ended" => NgCommand::MediaEnded {
                call_id: d.required("call-id")?,
                from_tag: d.required("from-tag")?,
                reason: d.text("reason")?.unwrap_or_default(),
            },
            "drain" => NgCommand::Drain,
            _ => return Err(NgError::UnknownCommand(command)),
        })
    }

    /// The request dictionary (without `auth`).
    pub fn to_value(&self) -> Value {
        let mut map = BTreeMap::new();
        match self {
            NgCommand::Offer(oa) | NgCommand::Answer(oa) => oa.emit(&mut map),
            NgCommand::Delete(r) | NgCommand::Query(r) => r.emit(&mut map),
            NgCommand::List { limit } => {
                if let Some(l) = limit {
                    put(
                        &mut map,
                        "limit",
                        Value::Int(i64::try_from(*l).unwrap_or(i64::MAX)),
                    );
                }
            }
            NgCommand::MediaEnded {
                call_id,
                from_tag,
                reason,
            } => {
                put(&mut map, "call-id", Value::text(call_id));
                put(&mut map, "from-tag", Value::text(from_tag));
                put(&mut map, "reason", Value::text(reason));
            }
            NgCommand::Ping | NgCommand::Drain => {}
        }
        put(&mut map, "command", Value::text(self.name()));
        Value::Dict(map)
    }
}

impl NgReply {
    /// The reply a dictionary carries.
    ///
    /// # Errors
    ///
    /// Not a dictionary, no `result`, an unknown one, or `sdp` not a byte string.
    pub fn parse(message: &Value) -> Result<NgReply, NgError> {
        let d = Dict::new(message)?;
        let result = d.text("result")?.ok_or(NgError::NoCommand)?;
        Ok(match result.as_str() {
            "pong" => NgReply::Pong,
            "ok" => NgReply::Ok {
                sdp: match d.get("sdp") {
                    None => None,
                    Some(Value::Bytes(b)) => Some(b.clone()),
                    Some(_) => return Err(NgError::Invalid("sdp")),
                },
                extra: d.extra(REPLY_KEYS),
            },
            "error" => NgReply::Error {
                reason: d.text("error-reason")?.unwrap_or_default(),
            },
            _ => return Err(NgError::UnknownResult(result)),
        })
    }

    /// The reply dictionary (without `auth`).
    pub fn to_value(&self) -> Value {
        let mut map = BTreeMap::new();
        match self {
            NgReply::Pong => put(&mut map, "result", Value::text("pong")),
            NgReply::Ok { sdp, extra } => {
                map.extend(extra.clone());
                if let Some(s) = sdp {
                    put(&mut map, "sdp", Value::Bytes(s.clone()));
                }
                put(&mut map, "result", Value::text("ok"));
            }
            NgReply::Error { reason } => {
                put(&mut map, "result", Value::text("error"));
                put(&mut map, "error-reason", Value::text(reason));
            }
        }
        Value::Dict(map)
    }
}

/// A request or a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // one per datagram, never stored in bulk
pub enum NgMessage {
    /// It has `command`.
    Request(NgCommand),
    /// It has `result`.
    Reply(NgReply),
}

/// A datagram read by [`decode`]: its cookie, and what its message is (or why it is not
/// usable — a server still answers an unusable request, with the cookie).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The cookie.
    pub cookie: Vec<u8>,
    /// The message, checked against the secret when one is configured.
    pub message: Result<NgMessage, NgError>,
}

type HmacSha256 = Hmac<sha2::Sha256>;

fn mac(secret: &[u8], cookie: &[u8], message: &Value) -> HmacSha256 {
    let mut unsigned = message.clone();
    if let Value::Dict(map) = &mut unsigned {
        map.remove(b"auth".as_slice());
    }
    let mut m =
        <HmacSha256 as KeyInit>::new_from_slice(secret).expect("HMAC takes keys of any length"); // invariant of HMAC (RFC 2104 §2)
    m.update(cookie);
    m.update(b" ");
    m.update(&unsigned.to_bytes());
    m
}

/// The `auth` value of `message` (its `auth` key, if any, left out) under `secret`.
pub fn sign(secret: &[u8], cookie: &[u8], message: &Value) -> String {
    let tag = mac(secret, cookie, message).finalize().into_bytes();
    tag.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `message` carries an `auth` that verifies under `secret` (compared in
/// constant time).
pub fn verify(secret: &[u8], cookie: &[u8], message: &Value) -> bool {
    let Some(hex) = message.get("auth").and_then(Value::as_str) else {
        return false;
    };
    if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return false;
    }
    let bytes: Vec<u8> = (0..32)
        .filter_map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok())
        .collect();
    mac(secret, cookie, message).verify_slice(&bytes).is_ok()
}

/// `cookie SP message`, with `auth` added when `secret` is set.
pub fn encode(cookie: &[u8], mut message: Value, secret: Option<&[u8]>) -> Vec<u8> {
    if let Some(s) = secret {
        let auth = sign(s, cookie, &message);
        if let Value::Dict(map) = &mut message {
            map.insert(b"auth".to_vec(), Value::text(&auth));
        }
    }
    bencode::emit_ng(cookie, &message)
}

/// A request datagram.
pub fn encode_request(cookie: &[u8], command: &NgCommand, secret: Option<&[u8]>) -> Vec<u8> {
    encode(cookie, command.to_value(), secret)
}

/// A reply datagram.
pub fn encode_reply(cookie: &[u8], reply: &NgReply, secret: Option<&[u8]>) -> Vec<u8> {
    encode(cookie, reply.to_value(), secret)
}

/// Read a datagram: the cookie, and the typed message when it verifies under `secret`
/// (when set) and parses.
///
/// # Errors
///
/// The datagram is not `COOKIE SP bencode` (then there is no cookie to answer with).
pub fn decode(datagram: &[u8], secret: Option<&[u8]>) -> Result<Received, bencode::Error> {
    let (cookie, value) = bencode::parse_ng(datagram)?;
    let message = if secret.is_some_and(|s| !verify(s, cookie, &value)) {
        Err(NgError::Auth)
    } else if value.get("command").is_some() {
        NgCommand::parse(&value).map(NgMessage::Request)
    } else {
        NgReply::parse(&value).map(NgMessage::Reply)
    };
    Ok(Received {
        cookie: cookie.to_vec(),
        message,
    })
}

/// Replies by cookie, kept [`REPLY_CACHE_TTL`]: a repeated cookie (a retransmission, or
/// a replay) is answered with the same bytes and the command is not run again.
#[derive(Debug, Clone, Default)]
pub struct ReplyCache {
    ttl: Duration,
    replies: BTreeMap<Vec<u8>, (Instant, Vec<u8>)>,
    order: VecDeque<(Instant, Vec<u8>)>,
}

impl ReplyCache {
    /// A cache keeping replies for `ttl` ([`REPLY_CACHE_TTL`] is rtpengine's).
    pub fn new(ttl: Duration) -> ReplyCache {
        ReplyCache {
            ttl,
            replies: BTreeMap::new(),
            order: VecDeque::new(),
        }
    }

    /// The reply sent to `cookie` within the last `ttl`.
    pub fn get(&mut self, now: Instant, cookie: &[u8]) -> Option<&[u8]> {
        self.expire(now);
        self.replies.get(cookie).map(|(_, b)| b.as_slice())
    }

    /// Remember `reply` for `cookie` (replacing an earlier one).
    pub fn insert(&mut self, now: Instant, cookie: &[u8], reply: Vec<u8>) {
        self.expire(now);
        self.replies.insert(cookie.to_vec(), (now, reply));
        self.order.push_back((now, cookie.to_vec()));
    }

    /// Drop replies older than the ttl.
    pub fn expire(&mut self, now: Instant) {
        while let Some((at, _)) = self.order.front() {
            if now.saturating_duration_since(*at) < self.ttl {
                break;
            }
            let Some((at, cookie)) = self.order.pop_front() else {
                break;
            };
            if self.replies.get(&cookie).is_some_and(|(t, _)| *t == at) {
                self.replies.remove(&cookie);
            }
        }
    }

    /// When the oldest reply expires.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.order.front().map(|(at, _)| *at + self.ttl)
    }

    /// Replies held.
    pub fn len(&self) -> usize {
        self.replies.len()
    }

    /// No reply held.
    pub fn is_empty(&self) -> bool {
        self.replies.is_empty()
    }
}

#[cfg(test)]
mod test {
    use super::*;

    /// An offer as Kamailio's rtpengine module builds it for
    /// `rtpengine_offer("replace-origin replace-session-connection ICE=remove RTP/AVP
    /// record-call=yes via-branch=1")`: keys in the order the module adds them (not
    /// sorted), cookie `<pid>_<counter>`.
    fn kamailio_offer() -> Vec<u8> {
        let sdp = "v=0\r\no=- 1 1 IN IP4 10.0.1.10\r\ns=-\r\nc=IN IP4 10.0.1.10\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0 8\r\n";
        let mut d = String::from("d");
        let mut kv = |k: &str, v: String| {
            d.push_str(&format!("{}:{k}{v}", k.len()));
        };
        let s = |t: &str| format!("{}:{t}", t.len());
        kv("sdp", s(sdp));
        kv("ICE", s("remove"));
        kv("record call", s("yes"));
        kv(
            "replace",
            format!("l{}{}e", s("origin"), s("session-connection")),
        );
        kv("transport-protocol", s("RTP/AVP"));
        kv("call-id", s("a84b4c76e66710@pc33"));
        kv("via-branch", s("z9hG4bK776asdhds"));
        kv(
            "received-from",
            format!("l{}{}e", s("IP4"), s("203.0.113.11")),
        );
        kv("from-tag", s("1928301774"));
        kv("command", s("offer"));
        d.push('e');
        format!("4242_17 {d}").into_bytes()
    }

    #[test]
    fn a_kamailio_offer_parses() {
        let r = decode(&kamailio_offer(), None).unwrap();
        assert_eq!(r.cookie, b"4242_17");
        let Ok(NgMessage::Request(NgCommand::Offer(o))) = r.message else {
            panic!("{:?}", r.message)
        };
        assert_eq!(o.call_id, "a84b4c76e66710@pc33");
        assert_eq!(o.from_tag, "1928301774");
        assert_eq!(o.to_tag, None);
        assert_eq!(o.via_branch.as_deref(), Some("z9hG4bK776asdhds"));
        assert_eq!(o.received_from, Some("203.0.113.11".parse().unwrap()));
        assert_eq!(o.ice, Some(Ice::Remove));
        assert_eq!(Ice::policy(o.ice.as_ref()), crate::sdp::IcePolicy::Strip);
        assert_eq!(o.replace, ["origin", "session-connection"]);
        assert_eq!(o.transport_protocol.as_deref(), Some("RTP/AVP"));
        assert!(o.sdp.starts_with(b"v=0\r\n"));
        // unknown keys are kept, as sent
        assert_eq!(
            o.extra.get(b"record call".as_slice()),
            Some(&Value::text("yes"))
        );
        // and emitted again: the command round-trips
        let again = NgCommand::parse(&NgCommand::Offer(o.clone()).to_value()).unwrap();
        assert_eq!(again, NgCommand::Offer(o));
    }

    #[test]
    fn key_spellings_and_pinhole_extensions() {
        let mut o = OfferAnswer {
            call_id: "c".into(),
            from_tag: "f".into(),
            to_tag: Some("t".into()),
            sdp: b"v=0\r\n".to_vec(),
            received_from: Some("2001:db8::1".parse().unwrap()),
            received_from_port: Some(5062),
            user_agent: Some("Linphone/5".into()),
            ice: Some(Ice::ForceRelay),
            ice_priority: Some(IcePriority::Highest),
            flags: vec!["trust-address".into()],
            ..OfferAnswer::default()
        };
        let v = NgCommand::Answer(o.clone()).to_value();
        let bytes = v.to_bytes();
        assert!(
            bytes
                .windows(b"18:received-from-porti5062e".len())
                .any(|w| w == b"18:received-from-porti5062e")
        );
        assert_eq!(NgCommand::parse(&v).unwrap(), NgCommand::Answer(o.clone()));
        // `received from` and `force_relay`, as older senders write them
        let old = Value::parse(
            b"d7:call-id1:c7:command5:offer8:from-tag1:f3:ICE11:force_relay13:received froml3:IP47:1.2.3.4e3:sdp0:e",
        )
        .unwrap();
        let NgCommand::Offer(p) = NgCommand::parse(&old).unwrap() else {
            panic!()
        };
        assert_eq!(p.received_from, Some("1.2.3.4".parse().unwrap()));
        assert_eq!(p.ice, Some(Ice::ForceRelay));
        assert!(p.extra.is_empty());
        // a family that does not fit the address is refused
        o.received_from = None;
        let mut bad = NgCommand::Offer(o).to_value();
        if let Value::Dict(m) = &mut bad {
            m.insert(
                b"received-from".to_vec(),
                Value::List(vec![Value::text("IP6"), Value::text("1.2.3.4")]),
            );
        }
        assert_eq!(
            NgCommand::parse(&bad),
            Err(NgError::Invalid("received-from"))
        );
    }

    #[test]
    fn commands_and_replies_round_trip() {
        let cmds = [
            NgCommand::Ping,
            NgCommand::Delete(CallRef {
                call_id: "c".into(),
                from_tag: Some("f".into()),
                ..CallRef::default()
            }),
            NgCommand::Query(CallRef {
                call_id: "c".into(),
                ..CallRef::default()
            }),
            NgCommand::List { limit: Some(10) },
            NgCommand::List { limit: None },
            NgCommand::MediaEnded {
                call_id: "c".into(),
                from_tag: "f".into(),
                reason: "idle-timeout".into(),
            },
            NgCommand::Drain,
        ];
        for c in cmds {
            let bytes = encode_request(b"1", &c, None);
            let r = decode(&bytes, None).unwrap();
            assert_eq!(r.message, Ok(NgMessage::Request(c)));
        }
        let mut extra = Extra::new();
        extra.insert(
            b"calls".to_vec(),
            Value::List(vec![Value::text("a"), Value::text("b")]),
        );
        for reply in [
            NgReply::Pong,
            NgReply::ok(),
            NgReply::Ok {
                sdp: Some(b"v=0\r\n".to_vec()),
                extra,
            },
            NgReply::error("Unknown call-id"),
        ] {
            let r = decode(&encode_reply(b"x_1", &reply, None), None).unwrap();
            assert_eq!(r.message, Ok(NgMessage::Reply(reply)));
        }
        assert_eq!(
            encode_reply(b"5323_1", &NgReply::Pong, None),
            b"5323_1 d6:result4:ponge"
        );
        assert_eq!(
            decode(b"1 d7:command4:pinge", None).unwrap().message,
            Ok(NgMessage::Request(NgCommand::Ping))
        );
        for (bad, err) in [
            (
                &b"1 d7:command3:fooe"[..],
                NgError::UnknownCommand("foo".into()),
            ),
            (b"1 d7:command5:offere", NgError::Missing("sdp")),
            (b"1 d6:result3:huhe", NgError::UnknownResult("huh".into())),
            (b"1 de", NgError::NoCommand),
            (b"1 le", NgError::NotADictionary),
        ] {
            assert_eq!(decode(bad, None).unwrap().message, Err(err));
        }
    }

    #[test]
    fn auth_signs_and_verifies() {
        let secret = b"s3cret";
        let bytes = encode_request(b"7_1", &NgCommand::Ping, Some(secret));
        let r = decode(&bytes, Some(secret)).unwrap();
        assert_eq!(r.message, Ok(NgMessage::Request(NgCommand::Ping)));
        // the MAC is HMAC-SHA256(secret, cookie ‖ " " ‖ canonical dict without auth)
        let mut m = <HmacSha256 as KeyInit>::new_from_slice(secret).unwrap();
        m.update(b"7_1 d7:command4:pinge");
        let hex: String = m
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let (_, v) = bencode::parse_ng(&bytes).unwrap();
        assert_eq!(v.get("auth").and_then(Value::as_str), Some(hex.as_str()));
        // wrong secret, no auth, another cookie, a changed key: refused
        assert_eq!(
            decode(&bytes, Some(b"other")).unwrap().message,
            Err(NgError::Auth)
        );
        assert_eq!(
            decode(b"7_1 d7:command4:pinge", Some(secret))
                .unwrap()
                .message,
            Err(NgError::Auth)
        );
        let moved = [b"7_2".as_slice(), &bytes[3..]].concat();
        assert_eq!(
            decode(&moved, Some(secret)).unwrap().message,
            Err(NgError::Auth)
        );
        let swapped = String::from_utf8(bytes.clone())
            .unwrap()
            .replace("4:ping", "4:pong");
        assert_eq!(
            decode(swapped.as_bytes(), Some(secret)).unwrap().message,
            Err(NgError::Auth)
        );
        // without a secret configured, auth is an ignored key
        assert_eq!(
            decode(&bytes, None).unwrap().message,
            Ok(NgMessage::Request(NgCommand::Ping))
        );
    }

    #[test]
    fn reply_cache_keeps_replies_for_the_ttl() {
        #[allow(clippy::disallowed_methods)] // a test's clock origin
        let t0 = Instant::now();
        let mut c = ReplyCache::new(REPLY_CACHE_TTL);
        c.insert(t0, b"a", b"ra".to_vec());
        c.insert(t0 + Duration::from_secs(10), b"b", b"rb".to_vec());
        assert_eq!(c.get(t0 + Duration::from_secs(29), b"a"), Some(&b"ra"[..]));
        assert_eq!(c.poll_timeout(), Some(t0 + REPLY_CACHE_TTL));
        assert_eq!(c.get(t0 + REPLY_CACHE_TTL, b"a"), None);
        assert_eq!(c.get(t0 + REPLY_CACHE_TTL, b"b"), Some(&b"rb"[..]));
        assert_eq!(c.len(), 1);
        c.expire(t0 + Duration::from_secs(40));
        assert!(c.is_empty());
    }
}
