use mq_core::Task;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Task)]
#[task(timeout = 30)]
struct EmbedImage;
fn main() {}
