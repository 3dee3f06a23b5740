use mq_core::Task;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Task)]
#[task(partitions = 0)]
struct Transfer {
    account: String,
}
fn main() {}
