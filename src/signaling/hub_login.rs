//! `Hub::login` in named steps: may this connection log in here, which name does it get
//! (a reclaim with its token, a free variant for the MDN dialect, or refused), then seat it
//! and tell it the room. A child of `hub`, so it works on the hub's private state.

use super::super::names;
use super::super::presence::PresenceMode;
use super::super::protocol::{Dialect, ErrorCode, LoginFailure, LoginRequest, ServerMsg};
use super::super::room::{send, Room, User};
use super::{new_token, Conn, ConnId, Delivery, Hub, Outbound, CLOSE_REPLACED};
use std::collections::HashMap;

/// The name a login ends up with, and what claiming it produced on the way.
struct Claimed {
    name: String,
    /// The call partner a reclaimed name carries over.
    peer: Option<String>,
    out: Vec<Delivery>,
}

impl Hub {
    /// Logs `conn` in; the deliveries to make, and whether it worked (the socket edge counts
    /// wrong access codes per client address).
    pub fn login(
        &mut self,
        conn: ConnId,
        req: LoginRequest,
    ) -> (Vec<Delivery>, Result<(), LoginFailure>) {
        let limits = self.config.limits();
        let fail = |reason| {
            let msg = ServerMsg::LoginFailed { reason, limits };
            (vec![send(conn, msg)], Err(reason))
        };
        let (room_key, name) = match self.admit(conn, &req) {
            Ok(admitted) => admitted,
            Err(None) => return (Vec::new(), Err(LoginFailure::AlreadyLoggedIn)),
            Err(Some(reason)) => return fail(reason),
        };
        self.dirty.insert(room_key.clone());
        let max = self.config.name_max_chars;
        let room = self.rooms.entry(room_key.clone()).or_default();
        let claimed = match claim_name(&mut self.conns, room, conn, name, &req, max) {
            Ok(claimed) => claimed,
            Err(reason) => return fail(reason),
        };
        let Claimed {
            name,
            peer,
            mut out,
        } = claimed;
        let key = names::key(&name);
        let token = seat(room, conn, &name, &req, peer);
        if let Some(c) = self.conns.get_mut(&conn) {
            c.user = Some(key);
        }
        let ice = None;
        let reply = ServerMsg::LoginOk {
            name,
            token,
            ice,
            limits,
            room: room_key,
        };
        out.push(send(conn, reply));
        out.extend(room_list(room, &req, conn));
        (out, Ok(()))
    }

    /// The room and the valid name `conn` may log in with; `Err(None)` for an unknown
    /// connection (nothing to tell), `Err(Some(..))` for a refusal to tell it.
    fn admit(
        &self,
        conn: ConnId,
        req: &LoginRequest,
    ) -> Result<(String, String), Option<LoginFailure>> {
        let c = self.conns.get(&conn).ok_or(None)?;
        if c.user.is_some() {
            return Err(Some(LoginFailure::AlreadyLoggedIn));
        }
        if let Some(code) = self.config.required_code(&c.room) {
            if !names::code_matches(code, req.access_code.as_deref()) {
                return Err(Some(LoginFailure::BadAccessCode));
            }
        }
        let name = names::valid_name(&req.name, self.config.name_max_chars)
            .ok_or(Some(LoginFailure::InvalidName))?;
        Ok((c.room.clone(), name))
    }
}

/// `name` if free; if held, reclaimed with the holder's token (the old connection is told
/// and closed), or for the MDN dialect a free variant; otherwise taken.
fn claim_name(
    conns: &mut HashMap<ConnId, Conn>,
    room: &mut Room,
    conn: ConnId,
    name: String,
    req: &LoginRequest,
    max: usize,
) -> Result<Claimed, LoginFailure> {
    let mut claimed = Claimed {
        name,
        peer: None,
        out: Vec::new(),
    };
    let Some(holder) = room.users.get(&names::key(&claimed.name)) else {
        return Ok(claimed);
    };
    if names::code_matches(&holder.token, req.token.as_deref()) {
        // Reclaim: the same person on a new connection. The call (if any) carries over,
        // since the peer addresses it by name.
        let stale = holder.conn;
        let told = "This name was taken over by a new connection.";
        claimed
            .out
            .push(send(stale, ServerMsg::error(ErrorCode::Replaced, told)));
        claimed.out.push(Delivery {
            to: stale,
            out: Outbound::Close {
                code: CLOSE_REPLACED,
                reason: "replaced",
            },
        });
        if let Some(stale_conn) = conns.get_mut(&stale) {
            stale_conn.user = None;
        }
        claimed.peer = room
            .remove_user(&names::key(&claimed.name))
            .and_then(|u| u.peer);
        return Ok(claimed);
    }
    if req.dialect != Dialect::Mdn {
        return Err(LoginFailure::NameTaken);
    }
    // Bounded: among users.len() + 1 candidates at least one is free.
    let free = (2..=room.users.len() as u32 + 2)
        .map(|n| names::variant(&claimed.name, n, max))
        .find(|v| !room.users.contains_key(&names::key(v)))
        .ok_or(LoginFailure::NameTaken)?;
    let reject = ServerMsg::RejectUsername { name: free.clone() };
    claimed.out.push(send(conn, reject));
    claimed.name = free;
    Ok(claimed)
}

/// Puts the user in the room with a fresh token (returned for the login reply).
fn seat(
    room: &mut Room,
    conn: ConnId,
    name: &str,
    req: &LoginRequest,
    peer: Option<String>,
) -> String {
    let token = new_token();
    let user = User {
        name: name.to_string(),
        conn,
        dialect: req.dialect,
        token: token.clone(),
        presence: match (req.dialect, req.presence_deltas) {
            (Dialect::Tutorial, true) => PresenceMode::Delta,
            _ => PresenceMode::Full,
        },
        peer,
    };
    room.insert_user(names::key(name), user);
    token
}

/// The list once; everyone else hears of this login in the next batch.
fn room_list(room: &mut Room, req: &LoginRequest, conn: ConnId) -> Vec<Delivery> {
    let frames = match req.dialect {
        Dialect::Tutorial if req.presence_deltas => room.snapshot_chunks(),
        _ => vec![room.snapshot()],
    };
    frames
        .into_iter()
        .map(|frame| Delivery {
            to: conn,
            out: Outbound::Frame(frame),
        })
        .collect()
}
