//! The Redis side of mq: key names ([`keys::QueueKeys`]) and URL redaction
//! ([`conn::redact_url`]), the commands each role needs ([`acl`]); the Lua scripts and connection handling are internal.

pub mod acl;
pub mod conn;
pub mod keys;
// The Lua scripts: public for mq's own tests, hidden from the docs.
#[doc(hidden)]
pub mod scripts;
pub(crate) mod server;
pub(crate) mod tls;
pub(crate) mod transient;
