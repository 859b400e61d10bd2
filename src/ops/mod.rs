//! Operator concerns of a long-running install, kept apart from the three jobs: the systemd
//! protocol ([`notify`], [`status`]: READY, watchdog, STATUS, STOPPING), live certificate reload
//! ([`certs`]), SIGHUP config reload ([`reload`]) and Prometheus metrics ([`metrics`]), all fed
//! from one read of the running jobs ([`stats`]); and `callbox selftest` ([`selftest`]), which
//! checks an install from the outside; [`memory`] hands freed heap back after a burst. The
//! signal loop that drives them is `app/service.rs`, above them: ops never names app.

pub(crate) mod acme;
mod acme_cache;
pub mod acme_challenges;
mod acme_plan;
pub mod certs;
pub mod memory;
pub(crate) mod metrics;
pub(crate) mod notify;
pub(crate) mod reload;
pub mod selftest;
mod selftest_login;
mod selftest_peer;
mod selftest_turn;
pub mod stats;
pub(crate) mod status;
