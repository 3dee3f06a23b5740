use mq_core::Task;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Task)]
#[task(unique = "shop, skew")]
struct Listing {
    shop: u32,
    sku: String,
}

#[derive(Serialize, Deserialize, Task)]
#[task(rate = "10/s", rate_key = "acount")]
struct Call {
    account: String,
}

#[derive(Serialize, Deserialize, Task)]
#[task(unique = "id")]
enum Sync {
    Full { id: u32 },
}
fn main() {}
