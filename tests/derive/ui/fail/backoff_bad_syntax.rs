use mq_core::Task;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Task)]
#[task(backoff = "exponential 1s..10m")]
struct EmbedImage;
fn main() {}
