use mq_core::Task;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Task)]
#[task(unique_for = "24h")]
struct Embed {
    product_id: u64,
}

#[derive(Serialize, Deserialize, Task)]
#[task(unique = "product_id", unique_for = "0s")]
struct Zero {
    product_id: u64,
}
fn main() {}
