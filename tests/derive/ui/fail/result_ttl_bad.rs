use mq_core::Task;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Task)]
#[task(result_ttl = "soon")]
struct Embed {
    product_id: u64,
}

#[derive(Serialize, Deserialize, Task)]
#[task(events = 1)]
struct Noisy {
    product_id: u64,
}

fn main() {}
