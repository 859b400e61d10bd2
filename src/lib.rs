//! callbox: self-hosted 1:1 video calls in one process.
//!
//! The process does three jobs, each in its own folder, and they meet only in [`app`]
//! (docs/architecture.md draws it; tests/layers.rs checks the import rule):
//! - [`web`] serves the embedded call page over HTTP(S), and owns the listening socket on the
//!   HTTPS port (including the first-byte split that lets TURN share port 443);
//! - [`signaling`] is the WebSocket relay: logins, presence, chat and call set-up messages;
//! - [`turn`] is the embedded STUN/TURN server with the credentials it mints for logged-in users.
//!
//! [`config`] reads `config.toml`; [`app`] starts everything and owns graceful shutdown;
//! [`ops`] is what an operator needs on a server (systemd, reloads, metrics), fed by the
//! [`counters`] the jobs bump; [`net`] holds the address helpers the per-address limits share;
//! [`rate`] is the one token bucket; [`lock`] the one mutex poison policy; [`shutdown`] says how long each part of a graceful stop may take.

pub mod app;
pub mod config;
pub mod counters;
pub(crate) mod lock;
pub(crate) mod net;
pub mod ops;
pub(crate) mod rate;
pub mod shutdown;
pub mod signaling;
pub mod turn;
pub mod web;
