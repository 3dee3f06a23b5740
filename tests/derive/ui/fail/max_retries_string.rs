use mq_core::Task;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Task)]
#[task(max_retries = "5")]
struct EmbedImage;
fn main() {}
