use mq_core::Task;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Task)]
#[task(queue = "images", retries = 3)]
struct EmbedImage;
fn main() {}
