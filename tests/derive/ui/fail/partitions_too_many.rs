use mq_core::Task;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Task)]
#[task(partitions = 2048)]
struct Transfer {
    account: String,
}

#[derive(Serialize, Deserialize, Task)]
#[task(partitions = 70000)]
struct Payout {
    account: String,
}
fn main() {}
