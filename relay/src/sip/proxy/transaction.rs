//! Transaction state (RFC 3261 §17) and the timer index.

use super::config::Timer;
use crate::sip::message::Message;
use crate::sip::transport::Flow;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// Transaction ids (server and client share one counter).
pub(crate) type TxId = u64;

/// RFC 3261 §17 states (the subset a proxy moves through).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// INVITE client before any response / non-INVITE client "Trying".
    Calling,
    /// A provisional response was seen.
    Proceeding,
    /// A final response was seen (client) or sent (server).
    Completed,
    /// INVITE server: the ACK arrived.
    Confirmed,
}

/// A server transaction: the request as received and what was answered.
#[derive(Debug, Clone)]
pub(crate) struct ServerTx {
    pub(crate) key: String,
    pub(crate) invite: bool,
    pub(crate) flow: Flow,
    pub(crate) request: Message,
    pub(crate) state: State,
    /// The last response sent and where (for retransmissions).
    pub(crate) last_response: Option<(Flow, Vec<u8>)>,
    pub(crate) client: Option<TxId>,
    pub(crate) g_interval: Duration,
    pub(crate) timers: [Option<Instant>; TIMERS],
}

/// A client transaction: the request as sent.
#[derive(Debug, Clone)]
pub(crate) struct ClientTx {
    pub(crate) branch: String,
    pub(crate) method: String,
    pub(crate) request: Message,
    pub(crate) bytes: Vec<u8>,
    pub(crate) flow: Flow,
    pub(crate) state: State,
    pub(crate) interval: Duration,
    /// The server transaction that caused it (none for CANCEL and keepalives).
    pub(crate) server: Option<TxId>,
    pub(crate) cancel_pending: bool,
    /// The ACK sent for a non-2xx final response (resent on its retransmissions).
    pub(crate) ack: Option<Vec<u8>>,
    /// The target binding was NATed (Contacts of responses get fixed).
    pub(crate) natted_target: bool,
    pub(crate) timers: [Option<Instant>; TIMERS],
}

/// Slots in a transaction's timer table, one per [`Timer`] variant.
pub(crate) const TIMERS: usize = 11;

pub(crate) fn slot(t: Timer) -> usize {
    t as usize
}

/// A `(deadline, tx, timer)` index; entries are checked against the transaction's own
/// timer table when they fire (lazy deletion), so re-arming never searches the set.
#[derive(Debug, Clone, Default)]
pub(crate) struct TimerIndex(pub(crate) BTreeSet<(Instant, TxId, Timer)>);

impl TimerIndex {
    pub(crate) fn arm(
        &mut self,
        table: &mut [Option<Instant>; TIMERS],
        id: TxId,
        t: Timer,
        at: Instant,
    ) {
        table[slot(t)] = Some(at);
        self.0.insert((at, id, t));
    }

    pub(crate) fn first(&self) -> Option<Instant> {
        self.0.first().map(|e| e.0)
    }

    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(Instant, TxId, Timer)> {
        let e = *self.0.first()?;
        if e.0 > now {
            return None;
        }
        self.0.pop_first();
        Some(e)
    }
}
