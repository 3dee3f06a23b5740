// `?` on `anyhow::Error` in a handler: the reason keeps the context chain.
use anyhow::Context;
use mq_core::{Task, TaskContext, TaskError, Worker};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Task)]
struct Remind {
    user: u64,
}

fn check(user: u64) -> anyhow::Result<()> {
    // `bail!` / `ensure!` return `anyhow::Error` itself: use them in anyhow functions and `?`
    // their result in the handler.
    anyhow::ensure!(user != 0, "user 0 is reserved");
    Ok(())
}

fn lookup(user: u64) -> anyhow::Result<String> {
    let raw: Result<String, std::io::Error> = Err(std::io::Error::other("connection reset"));
    raw.with_context(|| format!("looking up user {user}"))
}

async fn remind(task: Remind, _ctx: TaskContext) -> Result<(), TaskError> {
    let _name = lookup(task.user)?;
    check(task.user)?;
    Ok(())
}

#[allow(dead_code)]
async fn register() -> mq_core::Result<Worker> {
    Worker::builder("redis://127.0.0.1/")
        .handle(remind) // task type inferred from the fn's first argument
        .build()
        .await
}

fn main() {
    let reason = match lookup(7).map_err(TaskError::from) {
        Err(e) => e,
        Ok(_) => panic!("lookup succeeded"),
    };
    assert_eq!(
        reason,
        TaskError::Retry("looking up user 7: connection reset".into())
    );
    let err: TaskError = anyhow::anyhow!("plain").into();
    assert_eq!(err.reason(), "plain");
    assert_eq!(
        check(0).map_err(TaskError::from),
        Err(TaskError::Retry("user 0 is reserved".into()))
    );
}
