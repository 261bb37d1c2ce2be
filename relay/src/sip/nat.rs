//! NAT detection and Contact fixing for a NAT-aware proxy — the behaviour of the OpenSIPS
//! `nat_traversal` module (`client_nat_test`, `fix_contact`) and `nathelper`
//! (`nat_uac_test`, `fix_nated_contact`, the registrar's `received`), configured by the
//! scenario's `sip-proxy.nat` section (SCENARIO-FORMAT.md).
//!
//! # Contact fixing: the choice made
//!
//! A UA behind a NAT puts its private address in Contact; the peer's in-dialog requests
//! would go there and be lost. `fix_contact` rewrites the Contact URI's host and port to the
//! address the message came from (the NAT's public mapping, as `fix_nated_contact` does) and
//! keeps the original `host~port` in a URI parameter [`ORIGINAL_PARAM`] (the idea of
//! Kamailio's `add_contact_alias`, with the roles swapped: the URI points at the public
//! address so that any element can reach it, the parameter keeps what the UA wrote). When
//! a request whose Request-URI carries the parameter passes the proxy again, the proxy sends
//! it to the URI's (public) host and port and restores the original Request-URI, so the UA
//! receives a request addressed to the Contact it wrote.
//!
//! Over TCP/TLS the fixed URI also says the transport: a UA on a connection often writes a
//! Contact without `;transport=` (RFC 3261 §19.1.2 then means UDP), and the NAT's mapping
//! it now points at exists only for the connection — so the fix adds `transport=tcp` (or
//! `tls`) and the proxy reaches the address over the UA's open connection, as Kamailio's
//! `alias` parameter carries the protocol. The original value then reads `host~port~-`
//! (`-`: the UA wrote no transport), and restoring drops the added parameter. REGISTER Contacts are never
//! rewritten: the registrar stores the source address as the binding's path (nathelper's
//! `received`) and returns the Contacts as the UA sent them (RFC 3261 §10.3 step 8, so the
//! UA recognises its bindings).

use super::headers::Contacts;
use super::message::Message;
use super::transport::Transport;
use super::uri::{Uri, host_ip, host_text};
use std::net::{IpAddr, SocketAddr};

/// The URI parameter that keeps a fixed Contact's original `host~port` (`host~port~-` when
/// the fix added a `transport` parameter the UA had not written).
pub const ORIGINAL_PARAM: &str = "pinhole-orig";

/// The NAT detection tests (`sip-proxy.nat.test`), combinable like `client_nat_test`'s
/// bitmask; a message is NATed when any enabled test hits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct NatTests(pub u8);

impl NatTests {
    /// A private (RFC 1918), shared (RFC 6598 100.64/10), link-local (169.254/16) or IPv6
    /// unique-local/link-local address in Contact (nat_traversal test 1, nathelper 1).
    pub const PRIVATE_CONTACT: NatTests = NatTests(1);
    /// The source address differs from the top Via sent-by (nat_traversal test 2).
    pub const SOURCE_DIFFERS_FROM_VIA: NatTests = NatTests(2);
    /// A private address in the top Via (nat_traversal test 4, nathelper 2).
    pub const PRIVATE_VIA: NatTests = NatTests(4);
    /// The source port differs from the top Via port (nathelper 16).
    pub const SOURCE_PORT_DIFFERS_FROM_VIA: NatTests = NatTests(8);
    /// Every test.
    pub const ALL: NatTests = NatTests(15);

    /// Every test's scenario keyword, in the order SCENARIO-FORMAT.md lists them.
    pub const VALUES: &'static [&'static str] = &[
        "private-contact",
        "source-differs-from-via",
        "private-via",
        "source-port-differs-from-via",
    ];

    /// The scenario keyword of one test.
    pub fn from_keyword(s: &str) -> Option<NatTests> {
        Some(match s {
            "private-contact" => NatTests::PRIVATE_CONTACT,
            "source-differs-from-via" => NatTests::SOURCE_DIFFERS_FROM_VIA,
            "private-via" => NatTests::PRIVATE_VIA,
            "source-port-differs-from-via" => NatTests::SOURCE_PORT_DIFFERS_FROM_VIA,
            _ => return None,
        })
    }

    /// The union.
    pub fn union(self, o: NatTests) -> NatTests {
        NatTests(self.0 | o.0)
    }

    /// Whether every test of `o` is in `self`.
    pub fn contains(self, o: NatTests) -> bool {
        self.0 & o.0 == o.0 && o.0 != 0
    }

    /// Whether no test is set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// Whether `ip` is an address a NAT hides: RFC 1918, RFC 6598 shared space, link-local,
/// IPv6 unique-local (fc00::/7) and link-local (fe80::/10).
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            a.is_private() || a.is_link_local() || (o[0] == 100 && (o[1] & 0xc0) == 64)
        }
        IpAddr::V6(a) => {
            let s = a.segments()[0];
            (s & 0xfe00) == 0xfc00 || (s & 0xffc0) == 0xfe80
        }
    }
}

/// Run the enabled `tests` on a request received from `source`; returns the tests that hit.
/// Via tests use the top Via (for a response the top Via is the proxy's own, so only the
/// Contact test applies).
pub fn detect(msg: &Message, source: SocketAddr, tests: NatTests) -> NatTests {
    let mut hit = 0;
    if tests.contains(NatTests::PRIVATE_CONTACT)
        && let Ok(Contacts::List(list)) = msg.contacts()
        && list
            .iter()
            .filter_map(|c| c.uri.sip().and_then(|u| u.host_ip()))
            .any(is_private)
    {
        hit |= NatTests::PRIVATE_CONTACT.0;
    }
    if msg.is_request()
        && let Ok(via) = msg.top_via()
    {
        let via_ip = host_ip(&via.host);
        if tests.contains(NatTests::SOURCE_DIFFERS_FROM_VIA) && via_ip != Some(source.ip()) {
            hit |= NatTests::SOURCE_DIFFERS_FROM_VIA.0;
        }
        if tests.contains(NatTests::PRIVATE_VIA) && via_ip.is_some_and(is_private) {
            hit |= NatTests::PRIVATE_VIA.0;
        }
        if tests.contains(NatTests::SOURCE_PORT_DIFFERS_FROM_VIA)
            && via.port.unwrap_or(5060) != source.port()
        {
            hit |= NatTests::SOURCE_PORT_DIFFERS_FROM_VIA.0;
        }
    }
    NatTests(hit)
}

/// Rewrite every SIP Contact of `msg` to `source` (host and port), keeping the original in
/// [`ORIGINAL_PARAM`]; returns whether anything changed. A Contact already pointing at
/// `source` is left alone. `transport` is the one the message came over: over TCP/TLS a
/// Contact without a `transport` parameter (of a `sip:` URI) gets one naming it, since the
/// NAT's mapping at `source` belongs to that connection (see the module docs).
pub fn fix_contact(msg: &mut Message, source: SocketAddr, transport: Transport) -> bool {
    let Ok(Contacts::List(mut list)) = msg.contacts() else {
        return false;
    };
    let mut changed = false;
    for c in &mut list {
        let Some(u) = c.uri.sip_mut() else { continue };
        let (host, port) = (host_text(source.ip()), source.port());
        if u.host.eq_ignore_ascii_case(&host) && u.port.unwrap_or(5060) == port {
            continue;
        }
        let add_transport = transport.is_reliable() && !u.secure && !u.params.has("transport");
        if !u.params.has(ORIGINAL_PARAM) {
            let mut orig = format!("{}~{}", u.host, u.port.unwrap_or(5060));
            if add_transport {
                orig.push_str("~-");
            }
            u.params.set(ORIGINAL_PARAM, Some(orig));
        }
        if add_transport {
            u.params
                .set("transport", Some(transport.as_str().to_ascii_lowercase()));
        }
        u.host = host;
        u.port = Some(port);
        changed = true;
    }
    if changed {
        msg.remove_all("Contact");
        for c in list {
            msg.push_header(super::Header::new("Contact", c.to_string()));
        }
    }
    changed
}

/// For a Request-URI carrying [`ORIGINAL_PARAM`]: the URI with its original host and port
/// restored (to put back in the request), and a `transport` parameter the fix added
/// removed — the destination stays the URI as received.
pub fn restore_original(uri: &Uri) -> Option<Uri> {
    let u = uri.sip()?;
    let orig = u.params.get(ORIGINAL_PARAM)??;
    let (hostport, added_transport) = match orig.strip_suffix("~-") {
        Some(hp) => (hp, true),
        None => (orig, false),
    };
    let (host, port) = hostport.rsplit_once('~')?;
    let port: u16 = port.parse().ok()?;
    let mut out = u.clone();
    out.params.remove(ORIGINAL_PARAM);
    if added_transport {
        out.params.remove("transport");
    }
    out.host = host.to_string();
    out.port = (port != 5060 || u.port.is_some()).then_some(port);
    Some(Uri::Sip(out))
}

#[cfg(test)]
mod test {
    use super::*;

    /// The scenario format's NAT test keywords live here: every listed one parses to one
    /// test, all of them together are [`NatTests::ALL`], and nothing else parses.
    #[test]
    fn keywords() {
        let all = NatTests::VALUES
            .iter()
            .map(|k| NatTests::from_keyword(k).expect("a listed keyword parses"))
            .inspect(|t| assert_eq!(t.0.count_ones(), 1))
            .fold(NatTests::default(), NatTests::union);
        assert_eq!(all, NatTests::ALL);
        assert_eq!(NatTests::from_keyword("Private-Contact"), None);
        use crate::sip::proxy::KeepaliveMethod;
        assert_eq!(
            KeepaliveMethod::from_keyword("NOTIFY"),
            Some(KeepaliveMethod::Notify)
        );
        assert_eq!(KeepaliveMethod::from_keyword("options"), None);
        assert_eq!(KeepaliveMethod::VALUES, ["OPTIONS", "NOTIFY"]);
    }

    fn req(via: &str, contact: &str) -> Message {
        Message::parse(
            format!(
                "INVITE sip:b@example.com SIP/2.0\r\nVia: SIP/2.0/UDP {via};branch=z9hG4bK1\r\n\
                 From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\nCall-ID: c\r\n\
                 CSeq: 1 INVITE\r\nContact: <sip:a@{contact}>\r\nContent-Length: 0\r\n\r\n"
            )
            .as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn tests_combine() {
        let src: SocketAddr = "198.51.100.20:40000".parse().unwrap();
        let m = req("192.168.1.10:5060", "192.168.1.10:5060");
        assert_eq!(detect(&m, src, NatTests::ALL), NatTests::ALL);
        assert_eq!(
            detect(&m, src, NatTests::PRIVATE_VIA),
            NatTests::PRIVATE_VIA
        );
        // a public UA: nothing
        let m = req("198.51.100.20:40000", "198.51.100.20:40000");
        assert!(detect(&m, src, NatTests::ALL).is_empty());
        // CGNAT shared space and link-local count as private
        let m = req("198.51.100.20:40000", "100.64.3.4");
        assert_eq!(detect(&m, src, NatTests::ALL), NatTests::PRIVATE_CONTACT);
        let m = req("198.51.100.20:40000", "169.254.1.1");
        assert_eq!(detect(&m, src, NatTests::ALL), NatTests::PRIVATE_CONTACT);
        // only the port differs (a port-translating NAT that kept the address)
        let m = req("198.51.100.20:5060", "198.51.100.20:5060");
        assert_eq!(
            detect(&m, src, NatTests::ALL),
            NatTests::SOURCE_PORT_DIFFERS_FROM_VIA
        );
        assert!(is_private("fd00::1".parse().unwrap()));
        assert!(!is_private("100.128.0.1".parse().unwrap()));
    }

    #[test]
    fn fix_and_restore() {
        let src: SocketAddr = "198.51.100.20:40000".parse().unwrap();
        let mut m = req("192.168.1.10:5062", "192.168.1.10:5062;transport=udp");
        assert!(fix_contact(&mut m, src, Transport::Udp));
        let Ok(Contacts::List(c)) = m.contacts() else {
            panic!()
        };
        let uri = c[0].uri.clone();
        assert_eq!(
            uri.to_string(),
            "sip:a@198.51.100.20:40000;transport=udp;pinhole-orig=192.168.1.10~5062"
        );
        assert!(!fix_contact(&mut m, src, Transport::Udp), "idempotent");
        assert_eq!(
            restore_original(&uri).unwrap().to_string(),
            "sip:a@192.168.1.10:5062;transport=udp"
        );
    }

    #[test]
    fn fix_over_tcp_names_the_transport_and_restore_drops_it() {
        let src: SocketAddr = "198.51.100.20:40000".parse().unwrap();
        // no transport written: the fix adds the one the message came over
        let mut m = req("192.168.1.10:5062", "192.168.1.10:5062");
        assert!(fix_contact(&mut m, src, Transport::Tcp));
        let Ok(Contacts::List(c)) = m.contacts() else {
            panic!()
        };
        let uri = c[0].uri.clone();
        assert_eq!(
            uri.to_string(),
            "sip:a@198.51.100.20:40000;pinhole-orig=192.168.1.10~5062~-;transport=tcp"
        );
        assert_eq!(
            restore_original(&uri).unwrap().to_string(),
            "sip:a@192.168.1.10:5062"
        );
        // a transport the UA wrote is kept, and kept on restore
        let mut m = req("192.168.1.10:5062", "192.168.1.10:5062;transport=TCP");
        assert!(fix_contact(&mut m, src, Transport::Tls));
        let Ok(Contacts::List(c)) = m.contacts() else {
            panic!()
        };
        let uri = c[0].uri.clone();
        assert_eq!(uri.sip().unwrap().transport().as_deref(), Some("tcp"));
        assert_eq!(
            restore_original(&uri).unwrap().to_string(),
            "sip:a@192.168.1.10:5062;transport=TCP"
        );
    }
}
