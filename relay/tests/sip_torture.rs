//! RFC 4475 torture messages (`tests/data/rfc4475/*.dat`, the exact octets of the RFC's
//! §4 archive): the valid ones parse and give the proxy-relevant fields the RFC names; the
//! invalid ones are rejected, without panics; where RFC 4475 lets a tolerant element accept
//! a message, the table says which and why.

use relay::sip::{Contacts, Message, ParseError, StartLine, Uri};
use std::path::Path;

fn load(name: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/data/rfc4475/{name}.dat"));
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Every message of RFC 4475 with whether `Message::parse` must accept it.
const ALL: &[(&str, bool, &str)] = &[
    // §3.1.1 valid messages
    ("wsinv", true, "3.1.1.1 short tortuous INVITE"),
    ("intmeth", true, "3.1.1.2 wide range of valid characters"),
    ("esc01", true, "3.1.1.3 valid use of % escaping"),
    ("escnull", true, "3.1.1.4 escaped NULs in URIs"),
    ("esc02", true, "3.1.1.5 % that is not an escape"),
    ("lwsdisp", true, "3.1.1.6 no LWS between display name and <"),
    ("longreq", true, "3.1.1.7 long values in header fields"),
    (
        "dblreq",
        true,
        "3.1.1.8 extra trailing octets in a UDP datagram",
    ),
    (
        "semiuri",
        true,
        "3.1.1.9 semicolon-separated parameters in URI user part",
    ),
    (
        "transports",
        true,
        "3.1.1.10 varied and unknown transport types",
    ),
    (
        "mpart01",
        true,
        "3.1.1.11 multipart body with a binary part",
    ),
    ("unreason", true, "3.1.1.12 unusual reason phrase"),
    ("noreason", true, "3.1.1.13 empty reason phrase"),
    // §3.1.2 invalid messages
    (
        "badinv01",
        false,
        "3.1.2.1 extraneous header field separators",
    ),
    ("clerr", false, "3.1.2.2 Content-Length larger than message"),
    ("ncl", false, "3.1.2.3 negative Content-Length"),
    (
        "scalar02",
        false,
        "3.1.2.4 request scalar fields with overlarge values",
    ),
    (
        "scalarlg",
        false,
        "3.1.2.5 response scalar fields with overlarge values",
    ),
    (
        "quotbal",
        false,
        "3.1.2.6 unterminated quoted string in display name",
    ),
    ("ltgtruri", false, "3.1.2.7 <> enclosing Request-URI"),
    (
        "lwsruri",
        false,
        "3.1.2.8 malformed Request-URI (embedded LWS)",
    ),
    (
        "lwsstart",
        false,
        "3.1.2.9 multiple SP separating Request-Line elements",
    ),
    (
        "trws",
        false,
        "3.1.2.10 SP characters at end of Request-Line",
    ),
    (
        "escruri",
        false,
        "3.1.2.11 escaped headers in SIP Request-URI",
    ),
    // 3.1.2.12: the Date value is invalid, but RFC 4475 lets an element that does not
    // use Date ignore it; a proxy forwards Date unchanged and never interprets it.
    (
        "baddate",
        true,
        "3.1.2.12 invalid time zone in Date (tolerated: Date is not interpreted)",
    ),
    (
        "regbadct",
        false,
        "3.1.2.13 failure to enclose name-addr URI in <>",
    ),
    ("badaspec", false, "3.1.2.14 spaces within addr-spec"),
    (
        "baddn",
        false,
        "3.1.2.15 non-token characters in display name",
    ),
    ("badvers", false, "3.1.2.16 unknown protocol version"),
    (
        "mismatch01",
        false,
        "3.1.2.17 start line and CSeq method mismatch",
    ),
    (
        "mismatch02",
        false,
        "3.1.2.18 unknown method with CSeq method mismatch",
    ),
    ("bigcode", false, "3.1.2.19 overlarge response code"),
    // §3.2 transaction layer: syntactically valid
    (
        "badbranch",
        true,
        "3.2.1 missing transaction identifier (RFC 2543 branch)",
    ),
    // §3.3 application layer
    ("insuf", false, "3.3.1 missing required header fields"),
    (
        "unkscm",
        true,
        "3.3.2 Request-URI with unknown scheme (416 is the proxy's answer)",
    ),
    (
        "novelsc",
        true,
        "3.3.3 Request-URI with known but atypical scheme",
    ),
    ("unksm2", true, "3.3.4 unknown URI schemes in header fields"),
    (
        "bext01",
        true,
        "3.3.5 Proxy-Require and Require (420 is the proxy's answer)",
    ),
    ("invut", true, "3.3.6 unknown Content-Type"),
    ("regaut01", true, "3.3.7 unknown authorization scheme"),
    (
        "multi01",
        false,
        "3.3.8 multiple values in single-value required fields",
    ),
    ("mcl01", false, "3.3.9 multiple Content-Length values"),
    ("bcast", true, "3.3.10 200 OK with broadcast Via"),
    (
        "zeromf",
        true,
        "3.3.11 Max-Forwards of zero (483 is the proxy's answer)",
    ),
    (
        "cparam01",
        true,
        "3.3.12 REGISTER with a Contact header parameter",
    ),
    ("cparam02", true, "3.3.13 REGISTER with a url-parameter"),
    (
        "regescrt",
        true,
        "3.3.14 REGISTER with a URL-escaped header",
    ),
    ("sdp01", true, "3.3.15 unacceptable Accept offering"),
    // §3.4 backward compatibility
    ("inv2543", true, "3.4.1 INVITE with RFC 2543 syntax"),
];

#[test]
fn every_message_is_classified() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/rfc4475");
    let n = std::fs::read_dir(dir).unwrap().count();
    assert_eq!(
        n,
        ALL.len(),
        "a .dat file without an entry (or the reverse)"
    );
    assert_eq!(n, 49, "RFC 4475 has 49 messages");
}

#[test]
fn valid_parse_invalid_rejected() {
    let mut wrong = Vec::new();
    for &(name, valid, what) in ALL {
        let bytes = load(name);
        let r = Message::parse(&bytes);
        if r.is_ok() != valid {
            wrong.push(format!("{name} ({what}): {r:?}"));
        }
        if let Ok(m) = &r {
            // re-serialising an unedited message gives the received bytes (up to the
            // Content-Length body), and parses again to the same message
            let out = m.to_bytes();
            assert!(bytes.starts_with(&out), "{name}: not byte-exact");
            assert_eq!(&Message::parse(&out).unwrap(), m, "{name}");
        }
    }
    assert!(wrong.is_empty(), "misclassified:\n{}", wrong.join("\n"));
}

#[test]
fn wsinv_fields() {
    let m = Message::parse(&load("wsinv")).unwrap();
    let via = m.top_via().unwrap();
    assert_eq!(
        (via.transport.as_str(), via.host.as_str()),
        ("UDP", "192.0.2.2")
    );
    assert_eq!(via.branch(), Some("390skdjuw"));
    assert_eq!(m.to().unwrap().tag(), Some("1918181833n"));
    let from = m.from().unwrap();
    assert_eq!(from.tag(), Some("98asjd8"));
    assert_eq!(from.display.as_deref(), Some(r#""J Rosenberg \\\"""#));
    assert_eq!(m.max_forwards().unwrap(), Some(68));
    let cseq = m.cseq().unwrap();
    assert_eq!((cseq.seq, cseq.method.as_str()), (9, "INVITE"));
    assert_eq!(m.call_id().unwrap(), "wsinv.ndaksdj@192.0.2.1");
    assert_eq!(m.get("Subject"), Some(""));
    assert_eq!(
        m.get("NewFangledHeader"),
        Some("newfangled value continued newfangled value")
    );
    assert_eq!(m.get("UnknownHeaderWithUnusualValue"), Some(";;,,;;,;"));
    let route = m.name_addrs("Route").unwrap();
    assert!(route[0].uri.sip().unwrap().lr());
    let Contacts::List(c) = m.contacts().unwrap() else {
        panic!("star")
    };
    assert_eq!(c[0].display.as_deref(), Some(r#""Quoted string \"\"""#));
    assert_eq!(c[0].params.get("newparam"), Some(Some("newvalue")));
    assert_eq!(m.body().len(), 150);
}

#[test]
fn selected_fields() {
    let m = Message::parse(&load("semiuri")).unwrap();
    let ruri = m.request_uri().unwrap().sip().unwrap();
    assert_eq!(ruri.user.as_deref(), Some("user;par=u%40example.net"));
    let m = Message::parse(&load("dblreq")).unwrap();
    assert_eq!(m.body(), b"");
    let m = Message::parse(&load("noreason")).unwrap();
    assert!(
        matches!(m.start_line(), StartLine::Response { code: 100, reason } if reason.is_empty())
    );
    let m = Message::parse(&load("transports")).unwrap();
    let t: Vec<_> = m.via().unwrap().into_iter().map(|v| v.transport).collect();
    assert_eq!(t, ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]);
    let m = Message::parse(&load("unkscm")).unwrap();
    assert!(matches!(m.request_uri(), Some(Uri::Other(_))));
    let m = Message::parse(&load("zeromf")).unwrap();
    assert_eq!(m.max_forwards().unwrap(), Some(0));
    let m = Message::parse(&load("esc02")).unwrap();
    let Contacts::List(c) = m.contacts().unwrap() else {
        panic!("star")
    };
    assert_eq!(c.len(), 2);
    let m = Message::parse(&load("inv2543")).unwrap();
    assert_eq!(m.top_via().unwrap().branch(), None);
    assert_eq!(m.max_forwards().unwrap(), None);
    let m = Message::parse(&load("cparam01")).unwrap();
    let Contacts::List(c) = m.contacts().unwrap() else {
        panic!("star")
    };
    // addr-spec form: `;unknownparam` is a Contact parameter (RFC 4475 §3.3.12) ...
    assert_eq!(c[0].params.get("unknownparam"), Some(None));
    let m = Message::parse(&load("cparam02")).unwrap();
    let Contacts::List(c) = m.contacts().unwrap() else {
        panic!("star")
    };
    // ... and in <> a URI parameter (§3.3.13)
    assert!(c[0].params.0.is_empty());
    assert!(c[0].uri.sip().unwrap().params.has("unknownparam"));
}

#[test]
fn invalid_reasons() {
    let err = |n| Message::parse(&load(n)).unwrap_err();
    assert!(matches!(err("badvers"), ParseError::Version(_)));
    assert!(matches!(err("clerr"), ParseError::BodyLength { .. }));
    assert!(matches!(
        err("mcl01"),
        ParseError::Multiple("Content-Length")
    ));
    assert!(matches!(err("mismatch01"), ParseError::CseqMethod { .. }));
    assert!(matches!(err("insuf"), ParseError::Missing(_)));
    assert!(matches!(err("lwsstart"), ParseError::StartLine(_)));
}

#[test]
fn truncations_never_panic() {
    for &(name, _, _) in ALL {
        let b = load(name);
        for cut in 0..b.len() {
            let _ = Message::parse(&b[..cut]);
        }
    }
}
