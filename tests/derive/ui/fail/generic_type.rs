use mq_core::Task;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Task)]
struct Wrapper<T> {
    inner: T,
}
fn main() {}
