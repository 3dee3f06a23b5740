use mq_core::Task;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Account {
    id: u64,
}

#[derive(Serialize, Deserialize, Task)]
#[task(partitions = 4, partition_by = "account")]
struct Transfer {
    account: Account,
}
fn main() {}
