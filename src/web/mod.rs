//! The web job: the embedded call page, and the HTTP(S) listener that everything on the public
//! port goes through (page, `/ws` upgrade, and TURN over TLS split off by its first byte), with
//! the limits and headers that keep it up on the open internet.

pub mod assets;
pub(crate) mod headers;
mod io;
pub mod limits;
pub mod per_address;
pub mod redirect;
pub mod server;
pub mod tls;
