use mq_core::Task;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Task)]
#[task(key_concurrency = 2)]
struct NoKey {
    account: String,
}

#[derive(Serialize, Deserialize, Task)]
#[task(concurrency_key = "account")]
struct NoLimit {
    account: String,
}

#[derive(Serialize, Deserialize, Task)]
#[task(key_concurrency = 0, concurrency_key = "account")]
struct Zero {
    account: String,
}
fn main() {}
