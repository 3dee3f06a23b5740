use mq_core::{Task, TaskOptions};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Task)]
#[task(timeout = "none")]
struct LongRunning {
    id: u64,
}

fn main() {
    assert_eq!(LongRunning::OPTIONS.timeout, None);
    assert_eq!(
        LongRunning::OPTIONS,
        TaskOptions {
            timeout: None,
            ..TaskOptions::DEFAULT
        }
    );
}
