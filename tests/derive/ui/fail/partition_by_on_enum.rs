use mq_core::Task;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Task)]
#[task(partitions = 4, partition_by = "account")]
enum Ledger {
    Credit { account: String },
    Debit { account: String },
}

#[derive(Serialize, Deserialize, Task)]
#[task(partitions = 4, partition_by = "0")]
struct Tuple(String);

#[derive(Serialize, Deserialize, Task)]
#[task(partitions = 4, partition_by = "account")]
struct Unit;
fn main() {}
