use mq_core::Task;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Task)]
#[task(timeout = "soon")]
struct EmbedImage;
fn main() {}
