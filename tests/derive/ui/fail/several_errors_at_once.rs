use mq_core::Task;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Task)]
#[task(queue = "my images", retries = 3, timeout = "soon")]
#[task(backoff = "fixed(0s)", concurrency = 0, queue = "again")]
struct EmbedImage<T> {
    inner: T,
}
fn main() {}
