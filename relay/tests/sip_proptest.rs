//! Property tests of the SIP message layer: serialise ∘ parse is the identity on generated
//! messages (and on edited ones), and no input makes the parser or the framer panic.

use proptest::prelude::*;
use relay::sip::{Frame, Framing, Header, Limits, Message, StreamFramer};

fn token() -> impl Strategy<Value = String> {
    "[A-Za-z0-9][A-Za-z0-9.!%*_+`'~-]{0,12}"
}

/// Header values without CR/LF and without leading/trailing blanks.
fn value() -> impl Strategy<Value = String> {
    "[!-~]([ -~]{0,40}[!-~])?"
}

fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9-]{0,10}(\\.[a-z]{2,5}){0,2}",
        any::<[u8; 4]>().prop_map(|o| format!("{}.{}.{}.{}", o[0], o[1], o[2], o[3])),
        any::<[u16; 8]>().prop_map(|s| format!("[{}]", std::net::Ipv6Addr::from(s))),
    ]
}

prop_compose! {
    fn message()(
        method in prop_oneof![Just("INVITE".to_string()), Just("BYE".to_string()), token()],
        user in "[a-z][a-z0-9]{0,8}",
        h in host(),
        port in proptest::option::of(1u16..),
        branch in "[a-zA-Z0-9]{1,16}",
        vias in 1usize..4,
        compact in any::<bool>(),
        tag in "[a-z0-9]{1,10}",
        seq in 0u32..(1 << 31),
        mf in proptest::option::of(any::<u8>()),
        extra in proptest::collection::vec((token(), value()), 0..6),
        body in proptest::collection::vec(any::<u8>(), 0..64),
        response in proptest::option::of(100u16..700),
    ) -> (Message, Vec<u8>) {
        let hp = match port { Some(p) => format!("{h}:{p}"), None => h.clone() };
        let start = match response {
            Some(code) => format!("SIP/2.0 {code} Some Reason\r\n"),
            None => format!("{method} sip:{user}@{hp};transport=udp SIP/2.0\r\n"),
        };
        let mut text = start;
        for i in 0..vias {
            let name = if compact { "v" } else { "Via" };
            text += &format!("{name}: SIP/2.0/UDP {hp};branch=z9hG4bK{branch}{i};rport\r\n");
        }
        text += &format!("From: \"A \\\"q\\\"\" <sip:{user}@{h}>;tag={tag}\r\n");
        text += &format!("To: <sip:{user}@{h}>\r\n");
        text += &format!("Call-ID: {branch}@{h}\r\n");
        text += &format!("CSeq: {seq} {method}\r\n");
        if let Some(mf) = mf {
            text += &format!("Max-Forwards: {mf}\r\n");
        }
        for (n, v) in &extra {
            // unknown names only (a generated "Via" value would not be a Via)
            text += &format!("X-{n}: {v}\r\n");
        }
        text += &format!("Content-Length: {}\r\n\r\n", body.len());
        let mut bytes = text.into_bytes();
        bytes.extend_from_slice(&body);
        let m = Message::parse(&bytes).expect("a generated message parses");
        (m, bytes)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn serialise_parse_round_trip((m, bytes) in message()) {
        prop_assert_eq!(m.to_bytes(), bytes.clone());
        prop_assert_eq!(Message::parse(&m.to_bytes()).unwrap(), m.clone());
        // the same bytes framed from a stream in arbitrary chunks
        let mut f = StreamFramer::new(Limits::default());
        for c in bytes.chunks(7) {
            f.push(c);
        }
        let frame = f.poll().unwrap().unwrap();
        prop_assert_eq!(&frame, &Frame::Message(bytes.clone()));
        let Frame::Message(b) = frame else { unreachable!() };
        prop_assert_eq!(Message::parse_with(&b, &Limits::default(), Framing::Stream).unwrap(), m);
    }

    #[test]
    fn edits_round_trip((m, _) in message(), v in value(), name in token()) {
        let mut e = m.clone();
        e.push_front("Via", "SIP/2.0/TCP 203.0.113.1:5060;branch=z9hG4bKprop");
        e.set("Max-Forwards", "42");
        e.push_header(Header::new(&format!("Y-{name}"), v.clone()));
        e.set_body(b"new body".to_vec());
        let again = Message::parse(&e.to_bytes()).unwrap();
        let top = again.top_via().unwrap();
        prop_assert_eq!(top.branch(), Some("z9hG4bKprop"));
        prop_assert_eq!(again.max_forwards().unwrap(), Some(42));
        let x_name = format!("Y-{name}");
        prop_assert_eq!(again.get(&x_name), Some(v.as_str()));
        prop_assert_eq!(again.body(), b"new body");
        prop_assert_eq!(again.via().unwrap().len(), m.via().unwrap().len() + 1);
        // untouched fields keep their bytes
        let from = m.headers().iter().find(|h| h.is("From")).unwrap();
        prop_assert!(again.headers().contains(from));
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(m) = Message::parse(&data) {
            prop_assert_eq!(Message::parse(&m.to_bytes()).unwrap(), m);
        }
        let mut f = StreamFramer::new(Limits::default());
        f.push(&data);
        while let Some(r) = f.poll() {
            if let Ok(Frame::Message(b)) = r {
                let _ = Message::parse_with(&b, &Limits::default(), Framing::Stream);
            }
        }
    }

    #[test]
    fn mutated_messages_never_panic((_, bytes) in message(), at in any::<prop::sample::Index>(), b in any::<u8>()) {
        let mut d = bytes.clone();
        let i = at.index(d.len());
        d[i] = b;
        if let Ok(m) = Message::parse(&d) {
            prop_assert_eq!(Message::parse(&m.to_bytes()).unwrap(), m);
        }
    }
}
