//! One log line per call end: the room, how long the call lasted, whether its media went
//! direct or through the TURN relay (as the pages reported it), and how it ended.
//!
//! The hub tells this state about each call message it relays and each user that leaves; it
//! keeps the start time and reported path of every call in progress and writes the line when
//! the call ends. Only fixed words and the room name go into the line: never names, SDP,
//! candidates, chat text or tokens. The page reports its path in `call-media`
//! (`"path":"relay"` or `"direct"`, from the candidate pair getStats() shows in use); nothing
//! else in a client's message is read. Plain state: the caller passes the time.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::protocol::CallEffect;

/// How a call's media travelled, as the last page to report it said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    Relay,
    Direct,
    /// No page reported it (an old client, or the call ended before media connected).
    Unknown,
}

impl Path {
    fn as_str(self) -> &'static str {
        match self {
            Path::Relay => "relay",
            Path::Direct => "direct",
            Path::Unknown => "unknown",
        }
    }
}

/// One ended call, as logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallEnd {
    pub room: String,
    pub duration: Duration,
    pub path: Path,
    /// The message type that ended it (`hang-up`, `leave`, `call-decline`, ...), or
    /// `disconnected`, or `replaced` when one side started a call with someone else.
    pub how: &'static str,
}

struct Call {
    started: Instant,
    path: Path,
}

/// The calls in progress, by room and the two users' keys (in sorted order).
#[derive(Default)]
pub struct CallLog {
    calls: HashMap<(String, String, String), Call>,
    /// Each user's current partner, so a user's call is found without a scan.
    partner: HashMap<(String, String), String>,
}

fn pair(room: &str, a: &str, b: &str) -> (String, String, String) {
    let (x, y) = if a <= b { (a, b) } else { (b, a) };
    (room.to_string(), x.to_string(), y.to_string())
}

impl CallLog {
    /// `from` sent `kind` (whose `path` member, if any, is `reported`) to `to` in `room`; the
    /// line for a call it ended is
    /// logged and returned.
    pub fn message(
        &mut self,
        (room, from, to): (&str, &str, &str),
        (kind, effect): (&'static str, CallEffect),
        reported: Option<&str>,
        now: Instant,
    ) -> Vec<CallEnd> {
        let mut ended = Vec::new();
        match effect {
            CallEffect::Starts | CallEffect::Relearns => {
                if from != to && !self.calls.contains_key(&pair(room, from, to)) {
                    for user in [from, to] {
                        let other = if user == from { to } else { from };
                        ended.extend(self.end_user_call_except(room, user, other, "replaced", now));
                    }
                    self.calls.insert(
                        pair(room, from, to),
                        Call {
                            started: now,
                            path: Path::Unknown,
                        },
                    );
                    self.partner
                        .insert((room.into(), from.into()), to.to_string());
                    self.partner
                        .insert((room.into(), to.into()), from.to_string());
                }
                let path = match reported {
                    Some("relay") => Some(Path::Relay),
                    Some("direct") => Some(Path::Direct),
                    _ => None,
                };
                if let (Some(path), Some(call)) = (path, self.calls.get_mut(&pair(room, from, to)))
                {
                    call.path = path;
                }
            }
            CallEffect::Ends => ended.extend(self.end(room, from, to, kind, now)),
            CallEffect::None => {}
        }
        log(&ended);
        ended
    }

    /// `user` left `room`: a call it was in ends as `disconnected`.
    pub fn left(&mut self, room: &str, user: &str, now: Instant) -> Vec<CallEnd> {
        let ended: Vec<CallEnd> = self
            .end_user_call_except(room, user, "", "disconnected", now)
            .into_iter()
            .collect();
        log(&ended);
        ended
    }

    #[cfg(test)]
    /// Calls being tracked.
    pub fn len(&self) -> usize {
        self.calls.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    fn end_user_call_except(
        &mut self,
        room: &str,
        user: &str,
        except: &str,
        how: &'static str,
        now: Instant,
    ) -> Option<CallEnd> {
        let other = self.partner.get(&(room.to_string(), user.to_string()))?;
        if other == except {
            return None;
        }
        let other = other.clone();
        self.end(room, user, &other, how, now)
    }

    fn end(
        &mut self,
        room: &str,
        a: &str,
        b: &str,
        how: &'static str,
        now: Instant,
    ) -> Option<CallEnd> {
        let call = self.calls.remove(&pair(room, a, b))?;
        for (me, other) in [(a, b), (b, a)] {
            let key = (room.to_string(), me.to_string());
            if self.partner.get(&key).is_some_and(|p| p == other) {
                self.partner.remove(&key);
            }
        }
        Some(CallEnd {
            room: room.to_string(),
            duration: now.saturating_duration_since(call.started),
            path: call.path,
            how,
        })
    }
}

fn log(ended: &[CallEnd]) {
    for end in ended {
        tracing::info!(
            room = %end.room,
            duration_s = end.duration.as_secs(),
            path = end.path.as_str(),
            ended = end.how,
            "call ended"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_ends_once_with_its_duration_and_reported_path() {
        let t0 = Instant::now();
        let mut log = CallLog::default();
        let none = log.message(
            ("r", "ann", "bob"),
            ("call-accept", CallEffect::Starts),
            None,
            t0,
        );
        assert!(none.is_empty());
        log.message(
            ("r", "bob", "ann"),
            ("call-media", CallEffect::Relearns),
            Some("relay"),
            t0 + Duration::from_secs(2),
        );
        let later = t0 + Duration::from_secs(75);
        let ended = log.message(
            ("r", "bob", "ann"),
            ("hang-up", CallEffect::Ends),
            None,
            later,
        );
        assert_eq!(
            ended,
            vec![CallEnd {
                room: "r".into(),
                duration: Duration::from_secs(75),
                path: Path::Relay,
                how: "hang-up",
            }]
        );
        assert!(log
            .message(
                ("r", "ann", "bob"),
                ("hang-up", CallEffect::Ends),
                None,
                later
            )
            .is_empty());
        assert!(log.is_empty());
    }

    #[test]
    fn leaving_ends_the_call_and_a_new_partner_replaces_the_old_one() {
        let t0 = Instant::now();
        let mut log = CallLog::default();
        log.message(
            ("r", "ann", "bob"),
            ("video-offer", CallEffect::Starts),
            None,
            t0,
        );
        let ended = log.message(("r", "ann", "cat"), ("offer", CallEffect::Starts), None, t0);
        assert_eq!(ended.len(), 1);
        assert_eq!((ended[0].how, ended[0].path), ("replaced", Path::Unknown));
        log.message(
            ("r", "cat", "ann"),
            ("call-media", CallEffect::Relearns),
            Some("<script>"),
            t0,
        );
        let ended = log.left("r", "cat", t0 + Duration::from_secs(1));
        assert_eq!(ended.len(), 1);
        assert_eq!(
            (ended[0].how, ended[0].path),
            ("disconnected", Path::Unknown)
        );
        assert!(log.left("r", "ann", t0).is_empty());
        assert_eq!(log.len(), 0);
    }
}
