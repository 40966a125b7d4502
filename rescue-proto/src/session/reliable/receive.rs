//! The receive path of the core: sequenced frames in order (holding early ones within the
//! window), delivery per channel, the peer's OPEN and END.

use std::time::Instant;

use super::*;

impl Reliable {
    pub(super) fn on_sequenced(&mut self, now: Instant, frame: Frame) -> Result<(), SessionError> {
        if self.state != State::Open && self.state != (State::Ended { by_peer: false }) {
            return Ok(()); // nothing is delivered after the peer's END
        }
        let seq = frame.seq;
        if seq < self.next_expected {
            self.ack_now = true; // a duplicate: tell the peer where we are
            return Ok(());
        }
        if seq > self.next_expected {
            return self.hold_early(frame);
        }
        self.deliver(frame)?;
        let mut delivered = 1;
        while let Some(f) = self.early.remove(&self.next_expected) {
            self.early_bytes -= HEADER_LEN + f.payload.len();
            self.deliver(f)?;
            delivered += 1;
        }
        self.rx_unacked = self.rx_unacked.saturating_add(delivered);
        if self.rx_unacked >= ACK_EVERY_FRAMES {
            self.ack_now = true;
        } else if self.ack_deadline.is_none() {
            self.ack_deadline = Some(now + self.cfg.ack_delay);
        }
        Ok(())
    }

    fn hold_early(&mut self, frame: Frame) -> Result<(), SessionError> {
        let ahead = frame.seq - self.next_expected;
        let cost = HEADER_LEN + frame.payload.len();
        // PROTOCOL.md 7.3: a sender never has more than the buffer limits outstanding.
        if ahead >= MAX_BUFFER_FRAMES as u64 || self.early_bytes + cost > MAX_BUFFER_BYTES {
            return Err(self.fail(SessionError::WindowExceeded));
        }
        if let std::collections::btree_map::Entry::Vacant(v) = self.early.entry(frame.seq) {
            v.insert(frame);
            self.early_bytes += cost;
        }
        Ok(())
    }

    fn deliver(&mut self, f: Frame) -> Result<(), SessionError> {
        self.next_expected = self
            .next_expected
            .checked_add(1)
            .ok_or(SessionError::SequenceExhausted)?;
        let channel = f.channel;
        match f.kind {
            FrameKind::Data => match self.channels.lookup(channel) {
                Lookup::Open => self.events.push_back(Event::Data {
                    channel,
                    payload: f.payload,
                }),
                Lookup::Closed => self.events.push_back(Event::Rejected {
                    channel,
                    error: ChannelError::Closed,
                }),
                Lookup::Unknown => return Err(self.fail(SessionError::UnknownChannel(channel))),
            },
            FrameKind::Open => self.on_peer_open(channel, &f.payload)?,
            FrameKind::Close => match self.channels.lookup(channel) {
                Lookup::Open if channel >= FIRST_APP_CHANNEL => {
                    self.channels.close(channel);
                    self.events.push_back(Event::ChannelClosed {
                        channel,
                        by_peer: true,
                    });
                }
                Lookup::Closed => {} // both sides closed at once
                _ => return Err(self.fail(SessionError::BadChannelId(channel))),
            },
            _ => self.on_peer_end(f.end_reason().unwrap_or(EndReason::ProtocolError)),
        }
        Ok(())
    }

    fn on_peer_open(&mut self, channel: ChannelId, label: &[u8]) -> Result<(), SessionError> {
        let label = String::from_utf8_lossy(label).into_owned();
        match self.channels.peer_open(channel, &label) {
            Ok(true) => self
                .events
                .push_back(Event::ChannelOpened { channel, label }),
            Ok(false) => {
                let o = Outgoing {
                    kind: FrameKind::Close,
                    channel,
                    payload: Bytes::new(),
                };
                if !self.send.push(Class::Control, o) {
                    return Err(self.fail(SessionError::WindowExceeded));
                }
                self.events.push_back(Event::Rejected {
                    channel,
                    error: ChannelError::TableFull,
                });
            }
            Err(()) => return Err(self.fail(SessionError::BadChannelId(channel))),
        }
        Ok(())
    }

    fn on_peer_end(&mut self, reason: EndReason) {
        if self.state == State::Open {
            self.events.push_back(Event::Ended {
                reason,
                by_peer: true,
            });
        }
        self.state = State::Ended { by_peer: true };
        self.send.drop_pending();
        self.ack_now = true;
    }
}
