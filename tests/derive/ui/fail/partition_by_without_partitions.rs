use mq_core::Task;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Task)]
#[task(partition_by = "account")]
struct Transfer {
    account: String,
}

#[derive(Serialize, Deserialize, Task)]
#[task(partitions = 1, partition_by = "account")]
struct Payout {
    account: String,
}
fn main() {}
