//! The web job: the embedded call page, and the HTTP(S) listener that everything on the public
//! port goes through (page, `/ws` upgrade, and TURN over TLS split off by its first byte).

pub mod assets;
pub mod server;
pub mod tls;
