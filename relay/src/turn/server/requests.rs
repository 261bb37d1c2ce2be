//! Requests (RFC 8656 §5, RFC 8489 §6.3): the checks every request passes (unknown
//! comprehension-required attributes §7.2, long-term authentication §9.2 with its rate
//! limit), dispatch by method, and the success or error response.

use super::*;

impl TurnServer {
    pub(super) fn handle_request(
        &mut self,
        now: Instant,
        ft: FiveTuple,
        req: &Message,
        data: &[u8],
    ) {
        self.stats.requests += 1;
        if req.method == Method::Binding {
            self.stats.binding_requests += 1;
            if let Some(s) = self.stun.get_mut(&ft.server) {
                s.handle_input(now, ft.server, ft.client, data);
                while let Some(t) = s.poll_transmit() {
                    // On a stream only the connection itself can carry the answer.
                    if ft.transport == Transport::Udp || (t.from, t.to) == (ft.server, ft.client) {
                        self.transmits.push_back(Transmit {
                            transport: ft.transport,
                            from: t.from,
                            to: t.to,
                            conn: None,
                            data: t.data,
                        });
                    }
                }
                while s.poll_event().is_some() {}
            }
            return;
        }
        let Some(creds) = self.authenticate(now, ft, req, data) else {
            return;
        };
        // Attributes after the integrity attribute(s) are not authenticated: ignored
        // (RFC 8489 §14.5, §14.6).
        let trimmed = auth::authenticated_part(req);
        let req = trimmed.as_ref().unwrap_or(req);
        let key = &creds;
        let unknown: Vec<u16> = req
            .attributes
            .iter()
            .map(Attribute::typ)
            .filter(|t| crate::stun::attr::is_comprehension_required(*t) && !is_known(*t))
            .collect();
        let outcome = if !unknown.is_empty() {
            let extra = vec![
                Attribute::ErrorCode(ErrorCode::new(
                    error::UNKNOWN_ATTRIBUTE,
                    "Unknown Attribute",
                )),
                Attribute::UnknownAttributes(unknown),
            ];
            self.error_with(ft, req, Some(key), extra);
            return;
        } else if req.method == method::ALLOCATE {
            self.allocate(now, ft, req, key);
            return;
        } else if req.method == method::REFRESH {
            self.refresh(now, ft, req)
        } else if req.method == method::CREATE_PERMISSION {
            self.create_permission(now, ft, req)
        } else if req.method == method::CHANNEL_BIND {
            self.channel_bind(now, ft, req)
        } else if req.method == tcp_relay::method::CONNECT {
            match self.tcp_connect(now, ft, req, key) {
                Some(outcome) => outcome,
                None => return,
            }
        } else if req.method == tcp_relay::method::CONNECTION_BIND {
            self.tcp_connection_bind(ft, req, &key.user, key);
            return;
        } else {
            Err((error::BAD_REQUEST, "Bad Request"))
        };
        self.respond(ft, req, Some(key), outcome);
    }

    /// RFC 8489 §9.2.4 server checks ([`Authenticator::check`]), then RFC 8656 §4's
    /// same-user rule (441). The credentials when the request is authentic; else the error
    /// response (if any) has been queued.
    pub(super) fn authenticate(
        &mut self,
        now: Instant,
        ft: FiveTuple,
        req: &Message,
        data: &[u8],
    ) -> Option<Credentials> {
        let creds = match self.auth.check(req, data, self.secs(now)) {
            Ok(c) => c,
            Err(r) => {
                self.auth_failed(now, ft, req, r.user, r.reason, r.code);
                return None;
            }
        };
        if let Some(a) = self.allocations.get(&ft)
            && a.user != creds.user
        {
            self.stats.auth_failures += 1;
            self.events.push_back(TurnEvent::AuthFailed {
                client: ft.client,
                user: Some(creds.user),
                reason: AuthFailure::WrongCredentials,
            });
            self.respond(
                ft,
                req,
                None,
                Err((error::WRONG_CREDENTIALS, "Wrong Credentials")),
            );
            return None;
        }
        Some(creds)
    }

    pub(super) fn auth_failed(
        &mut self,
        now: Instant,
        ft: FiveTuple,
        req: &Message,
        user: Option<String>,
        reason: AuthFailure,
        code: u16,
    ) {
        self.stats.auth_failures += 1;
        self.events.push_back(TurnEvent::AuthFailed {
            client: ft.client,
            user,
            reason,
        });
        let elapsed = self
            .epoch
            .map_or(Duration::ZERO, |e| now.saturating_duration_since(e));
        if !self.limiter.allow(ft.client.ip(), elapsed) {
            self.stats.rate_limited += 1;
            return;
        }
        let reason_phrase = match code {
            error::UNAUTHENTICATED => "Unauthenticated",
            error::STALE_NONCE => "Stale Nonce",
            _ => "Bad Request",
        };
        let mut extra = vec![Attribute::ErrorCode(ErrorCode::new(code, reason_phrase))];
        if code != error::BAD_REQUEST {
            extra.extend(self.auth.challenge(self.secs(now)));
        }
        self.error_with(ft, req, None, extra);
    }

    /// Queues a success or error response; adds SOFTWARE, the integrity attributes the
    /// credentials call for (MESSAGE-INTEGRITY and/or MESSAGE-INTEGRITY-SHA256 with their
    /// key) and FINGERPRINT (when the request had one). Returns the bytes.
    pub(super) fn respond(
        &mut self,
        ft: FiveTuple,
        req: &Message,
        key: Option<&Credentials>,
        outcome: Outcome,
    ) -> Vec<u8> {
        match outcome {
            Ok(attributes) => {
                let mut msg = Message::new(Class::Success, req.method, req.transaction_id);
                msg.attributes = attributes;
                self.stats.success_responses += 1;
                self.finish(ft, req, key, msg)
            }
            Err((code, reason)) => self.error_with(
                ft,
                req,
                key,
                vec![Attribute::ErrorCode(ErrorCode::new(code, reason))],
            ),
        }
    }

    pub(super) fn error_with(
        &mut self,
        ft: FiveTuple,
        req: &Message,
        key: Option<&Credentials>,
        attributes: Vec<Attribute>,
    ) -> Vec<u8> {
        let mut msg = Message::new(Class::Error, req.method, req.transaction_id);
        if let Some(Attribute::ErrorCode(e)) = attributes.first() {
            self.events.push_back(TurnEvent::ErrorResponse {
                client: ft.client,
                method: req.method.to_u16(),
                code: e.code,
            });
        }
        msg.attributes = attributes;
        self.stats.error_responses += 1;
        self.finish(ft, req, key, msg)
    }

    pub(super) fn finish(
        &mut self,
        ft: FiveTuple,
        req: &Message,
        key: Option<&Credentials>,
        mut msg: Message,
    ) -> Vec<u8> {
        if let Some(s) = &self.config.software {
            msg.attributes.push(Attribute::Software(s.clone()));
        }
        if let Some(c) = key {
            if c.integrity.sha1 {
                msg.attributes.push(attrs::integrity_placeholder());
            }
            if c.integrity.sha256 {
                msg.attributes.push(attrs::integrity_sha256_placeholder());
            }
        }
        if req.has_fingerprint() {
            msg.attributes.push(Attribute::Fingerprint(0));
        }
        let data = match key {
            Some(c) => msg.emit_with_integrity(c.key.as_bytes()),
            None => msg.emit(),
        };
        self.send_to_client(ft, data.clone());
        data
    }
}
