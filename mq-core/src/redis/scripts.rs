//! Every Lua script mq runs. Each touches the keys of one queue only (one hash slot).

use std::sync::LazyLock;

use redis::Script;

/// Moves due delayed tasks into the stream (`lua/promote.lua`).
pub static PROMOTE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/promote.lua")));
/// Schedules a task relative to the server clock (`lua/schedule.lua`).
pub static SCHEDULE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/schedule.lua")));
/// Acks a failed attempt and schedules the next one (`lua/retry.lua`).
pub static RETRY: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/retry.lua")));
/// Acks a task and moves it to the dead-letter stream (`lua/dead.lua`).
pub static DEAD: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/dead.lua")));
