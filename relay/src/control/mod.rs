//! How a SIP proxy drives a media relay (DESIGN.md `control`).
//!
//! Today this holds the wire codec of rtpengine's "ng" control protocol ([`bencode`]: one
//! bencoded dictionary per UDP datagram behind a cookie), the format Kamailio's and
//! OpenSIPS's `rtpengine` modules speak. The media relay and the ng commands (ping, offer,
//! answer, delete, query, list) that use it are not built yet (issue #13).

pub mod bencode;
