use mq_core::Task;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Task)]
#[task(backoff = "exponential(1m, 10s)")]
struct EmbedImage;
fn main() {}
