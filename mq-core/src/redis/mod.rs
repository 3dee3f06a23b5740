//! The Redis side of mq: key names ([`keys::QueueKeys`]) and URL redaction
//! ([`conn::redact_url`]), the commands each role needs ([`acl`]); the Lua scripts and
//! connection handling are internal.
//!
//! Files, lowest first (each uses only those above it, and the crate's plain types):
//! - `keys.rs`: every key name of a queue;
//! - `scripts.rs` and `lua/`: the Lua scripts;
//! - `tls.rs`: certificates of the TLS settings, TLS failures classified;
//! - `conn.rs`: endpoints, reconnecting connections (one server or a cluster), the control
//!   pool;
//! - `transient.rs`: which errors are worth waiting for, read-only replicas;
//! - `server.rs`: consumer groups, the eviction policy, the server's version;
//! - `acl.rs`: the commands and keys each role needs, checked at start.

pub mod acl;
pub mod conn;
pub mod keys;
// The Lua scripts: public for mq's own tests, hidden from the docs.
#[doc(hidden)]
pub mod scripts;
pub(crate) mod server;
pub(crate) mod tls;
pub(crate) mod transient;
