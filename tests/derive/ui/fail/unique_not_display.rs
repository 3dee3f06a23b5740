use mq_core::Task;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Account {
    id: u64,
}

#[derive(Serialize, Deserialize, Task)]
#[task(unique = "sku, account")]
struct Listing {
    sku: String,
    account: Account,
}

#[derive(Serialize, Deserialize, Task)]
#[task(key_concurrency = 2, concurrency_key = "account()")]
struct Call {
    id: u64,
}

impl Call {
    fn account(&self) -> Account {
        Account { id: self.id }
    }
}

#[derive(Serialize, Deserialize, Task)]
#[task(unique = "dedup_key()")]
struct NoMethod {
    id: u64,
}
fn main() {}
