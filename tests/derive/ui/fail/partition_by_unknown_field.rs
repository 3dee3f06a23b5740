use mq_core::Task;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Task)]
#[task(partitions = 8, partition_by = "acount")]
struct Transfer {
    account: String,
    amount: u64,
}
fn main() {}
