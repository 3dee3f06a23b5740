use mq_core::Task;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Task)]
#[task(queue = "images")]
#[task(max_retries = 2, queue = "thumbnails")]
struct EmbedImage;
fn main() {}
