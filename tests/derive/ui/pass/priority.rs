// `priority` sets `TaskOptions::priority` (usable in const context); without it the type is
// not prioritized.
use mq_core::{Priority, Task};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Task)]
#[task(queue = "embed", priority = "high")]
struct Urgent;

#[derive(Serialize, Deserialize, Task)]
#[task(queue = "embed", priority = "normal")]
struct Usual;

#[derive(Serialize, Deserialize, Task)]
#[task(queue = "embed", priority = "low")]
struct Backfill;

#[derive(Serialize, Deserialize, Task)]
struct Plain;

const _: () = assert!(matches!(Urgent::OPTIONS.priority, Some(Priority::High)));
const _: () = assert!(matches!(Usual::OPTIONS.priority, Some(Priority::Normal)));
const _: () = assert!(matches!(Backfill::OPTIONS.priority, Some(Priority::Low)));
const _: () = assert!(Plain::OPTIONS.priority.is_none());

fn main() {}
