//! The web job: the embedded call page, and the HTTP(S) listener that everything on the public
//! port goes through (page, `/ws` upgrade, and TURN over TLS split off by its first byte), with
//! the limits and headers that keep it up on the open internet.

pub(crate) mod assets;
pub(crate) mod headers;
mod io;
pub mod limits;
pub(crate) mod per_address;
pub(crate) mod redirect;
pub(crate) mod server;
pub mod tls;
