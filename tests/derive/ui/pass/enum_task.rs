use mq_core::{Task, TaskOptions};
use serde::{Deserialize, Serialize};

#[derive(Debug, PartialEq, Serialize, Deserialize, Task)]
#[task(queue = "maintenance", max_retries = 1)]
enum Maintenance {
    Vacuum,
    Reindex { table: String },
    Purge(u32),
}

#[derive(Serialize, Deserialize, Task)]
enum SendEmail {
    Welcome { to: String },
}

fn main() {
    assert_eq!(Maintenance::NAME, "Maintenance");
    assert_eq!(Maintenance::QUEUE, "maintenance");
    assert_eq!(
        Maintenance::OPTIONS,
        TaskOptions {
            max_retries: 1,
            ..TaskOptions::DEFAULT
        }
    );
    assert_eq!(SendEmail::NAME, "SendEmail");
    assert_eq!(SendEmail::QUEUE, "send_email");

    fn is_task<T: Task>() {}
    is_task::<Maintenance>();
    is_task::<SendEmail>();
}
