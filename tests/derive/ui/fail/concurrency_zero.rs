use mq_core::Task;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Task)]
#[task(concurrency = 0)]
struct EmbedImage;
fn main() {}
