use mq_core::Task;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Task)]
#[task(rate_key = "account")]
struct Call {
    account: String,
}
fn main() {}
