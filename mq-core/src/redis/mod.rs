//! The Redis side of mq: key names, Lua scripts and connections.

pub mod conn;
pub mod keys;
pub mod scripts;
