//! Allocations (RFC 8656 §7): Allocate with its checks (transport, family, EVEN-PORT and
//! RESERVATION-TOKEN, quotas), Refresh (§8) and an allocation's removal.

use super::*;

impl TurnServer {
    pub(super) fn lifetime(requested: Option<u32>) -> Duration {
        match requested {
            None => DEFAULT_LIFETIME,
            Some(s) => Duration::from_secs(u64::from(s)).clamp(DEFAULT_LIFETIME, MAX_LIFETIME),
        }
    }

    /// RFC 8656 §7.2.
    pub(super) fn allocate(
        &mut self,
        now: Instant,
        ft: FiveTuple,
        req: &Message,
        key: &Credentials,
    ) {
        let user = key.user.as_str();
        if let Some(a) = self.allocations.get(&ft) {
            if a.allocate_tid == req.transaction_id {
                // A retransmission: the same success response (RFC 8656 §7.2 item 1).
                let data = a.allocate_response.clone();
                self.send_to_client(ft, data);
            } else {
                self.respond(
                    ft,
                    req,
                    Some(key),
                    Err((error::ALLOCATION_MISMATCH, "Allocation Mismatch")),
                );
            }
            return;
        }
        match self.allocate_checks(now, ft, req, user) {
            Err(e) => {
                self.respond(ft, req, Some(key), Err(e));
            }
            Ok((relayed, lifetime, token)) => {
                let mut attributes = vec![
                    attrs::xor_address(kind::XOR_RELAYED_ADDRESS, relayed, &req.transaction_id),
                    attrs::lifetime(lifetime.as_secs() as u32),
                ];
                if let Some(t) = token {
                    attributes.push(attrs::raw(kind::RESERVATION_TOKEN, t.to_vec()));
                }
                attributes.push(Attribute::XorMappedAddress(ft.client));
                let data = self.respond(ft, req, Some(key), Ok(attributes));
                let expires = now + lifetime;
                self.allocations.insert(
                    ft,
                    Allocation {
                        user: user.to_owned(),
                        relayed,
                        expires,
                        permissions: HashMap::new(),
                        channels: HashMap::new(),
                        by_peer: HashMap::new(),
                        allocate_tid: req.transaction_id,
                        allocate_response: data,
                    },
                );
                self.by_relayed.insert(relayed, ft);
                *self.per_user.entry(user.to_owned()).or_default() += 1;
                self.timers.insert((expires, TimerKey::Allocation(ft)));
                self.stats.allocations_created += 1;
                let tcp = attrs::raw_value(req, kind::REQUESTED_TRANSPORT)
                    .and_then(attrs::decode_first_byte_of_4)
                    == Some(tcp_relay::TRANSPORT_TCP);
                if tcp {
                    self.tcp_allocated(ft, relayed);
                } else {
                    self.commands.push_back(Command::BindRelay { relayed });
                }
                self.events.push_back(TurnEvent::AllocationCreated {
                    client: ft.client,
                    server: ft.server,
                    relayed,
                    user: user.to_owned(),
                    lifetime,
                });
            }
        }
    }

    /// The checks of RFC 8656 §7.2 items 2–9, then the relayed address and lifetime.
    #[allow(clippy::type_complexity)]
    pub(super) fn allocate_checks(
        &mut self,
        now: Instant,
        _ft: FiveTuple,
        req: &Message,
        user: &str,
    ) -> Result<(SocketAddr, Duration, Option<[u8; 8]>), (u16, &'static str)> {
        const BAD: (u16, &str) = (error::BAD_REQUEST, "Bad Request");
        let transport = attrs::raw_value(req, kind::REQUESTED_TRANSPORT)
            .and_then(attrs::decode_first_byte_of_4)
            .ok_or(BAD)?;
        if transport == tcp_relay::TRANSPORT_TCP {
            self.tcp_allocate_checks(_ft, req)?;
        } else if transport != attrs::TRANSPORT_UDP {
            return Err((
                error::UNSUPPORTED_TRANSPORT,
                "Unsupported Transport Protocol",
            ));
        }
        let even = match attrs::raw_value(req, kind::EVEN_PORT) {
            None => None,
            Some(v) => Some(attrs::decode_even_port(v).ok_or(BAD)?),
        };
        let token = match attrs::raw_value(req, kind::RESERVATION_TOKEN) {
            None => None,
            Some(v) => Some(<[u8; 8]>::try_from(v).map_err(|_| BAD)?),
        };
        let family = match attrs::raw_value(req, kind::REQUESTED_ADDRESS_FAMILY) {
            None => None,
            Some(v) => Some(attrs::decode_first_byte_of_4(v).ok_or(BAD)?),
        };
        if token.is_some() && (even.is_some() || family.is_some()) {
            return Err(BAD);
        }
        let ours = if self.config.relay_addr.is_ipv4() {
            attrs::FAMILY_IPV4
        } else {
            attrs::FAMILY_IPV6
        };
        // Without REQUESTED-ADDRESS-FAMILY the family is IPv4 (RFC 8656 §7.2 item 6);
        // a reservation token implies the family of the reserved port.
        if token.is_none() && family.unwrap_or(attrs::FAMILY_IPV4) != ours {
            return Err((
                error::ADDRESS_FAMILY_NOT_SUPPORTED,
                "Address Family not Supported",
            ));
        }
        let requested_lifetime = match attrs::raw_value(req, kind::LIFETIME) {
            None => None,
            Some(v) => Some(attrs::decode_u32(v).ok_or(BAD)?),
        };
        if let Some(q) = self.config.quota
            && self.per_user.get(user).copied().unwrap_or(0) >= q
        {
            return Err((error::ALLOCATION_QUOTA_REACHED, "Allocation Quota Reached"));
        }
        let (port, new_token) = if let Some(t) = token {
            let (port, expires) = self
                .reservations
                .remove(&t)
                .ok_or((error::INSUFFICIENT_CAPACITY, "Insufficient Capacity"))?;
            // The reserved port stays marked as used; now it belongs to this allocation.
            self.timers.remove(&(expires, TimerKey::Reservation(t)));
            (port, None)
        } else {
            let reserve = even == Some(true);
            let (port, next) = self
                .ports
                .take(even.is_some(), reserve)
                .ok_or((error::INSUFFICIENT_CAPACITY, "Insufficient Capacity"))?;
            let new_token = next.map(|q| {
                let t = self.ports.next_u64().to_be_bytes();
                let expires = now + RESERVATION_LIFETIME;
                self.reservations.insert(t, (q, expires));
                self.timers.insert((expires, TimerKey::Reservation(t)));
                t
            });
            (port, new_token)
        };
        Ok((
            SocketAddr::new(self.config.relay_addr, port),
            Self::lifetime(requested_lifetime),
            new_token,
        ))
    }

    /// RFC 8656 §8.
    pub(super) fn refresh(&mut self, now: Instant, ft: FiveTuple, req: &Message) -> Outcome {
        let requested = match attrs::raw_value(req, kind::LIFETIME) {
            None => None,
            Some(v) => Some(attrs::decode_u32(v).ok_or((error::BAD_REQUEST, "Bad Request"))?),
        };
        let a = self
            .allocations
            .get_mut(&ft)
            .ok_or((error::ALLOCATION_MISMATCH, "Allocation Mismatch"))?;
        let relayed = a.relayed;
        if requested == Some(0) {
            self.remove_allocation(ft);
            self.stats.allocations_deleted += 1;
            self.events.push_back(TurnEvent::AllocationDeleted {
                client: ft.client,
                relayed,
            });
            return Ok(vec![attrs::lifetime(0)]);
        }
        let lifetime = Self::lifetime(requested);
        let old = std::mem::replace(&mut a.expires, now + lifetime);
        self.timers.remove(&(old, TimerKey::Allocation(ft)));
        self.timers
            .insert((now + lifetime, TimerKey::Allocation(ft)));
        self.events.push_back(TurnEvent::AllocationRefreshed {
            client: ft.client,
            relayed,
            lifetime,
        });
        Ok(vec![attrs::lifetime(lifetime.as_secs() as u32)])
    }

    pub(super) fn remove_allocation(&mut self, ft: FiveTuple) {
        let Some(a) = self.allocations.remove(&ft) else {
            return;
        };
        self.timers.remove(&(a.expires, TimerKey::Allocation(ft)));
        for (ip, at) in &a.permissions {
            self.timers.remove(&(*at, TimerKey::Permission(ft, *ip)));
        }
        for (n, c) in &a.channels {
            self.timers.remove(&(c.expires, TimerKey::Channel(ft, *n)));
        }
        let tcp = self.tcp_allocation_removed(ft, a.relayed);
        self.by_relayed.remove(&a.relayed);
        self.ports.release(a.relayed.port());
        if let Some(n) = self.per_user.get_mut(&a.user) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_user.remove(&a.user);
            }
        }
        if !tcp {
            self.commands
                .push_back(Command::CloseRelay { relayed: a.relayed });
        }
    }
}
