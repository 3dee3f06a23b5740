// `.handle(f)` infers the task type from an async fn, an annotated closure, a batch handler
// and a handler struct; no turbofish needed.
use std::time::Duration;

use mq_core::{batch, Handler, Task, TaskContext, TaskError, Worker};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Task)]
#[task(queue = "images")]
struct EmbedImage {
    url: String,
}

#[derive(Serialize, Deserialize, Task)]
#[task(queue = "texts")]
struct EmbedText {
    text: String,
}

#[derive(Serialize, Deserialize, Task)]
#[task(queue = "texts")]
struct Translate {
    text: String,
}

#[derive(Serialize, Deserialize, Task)]
struct Ping;

async fn embed(task: EmbedImage, _ctx: TaskContext) -> Result<(), TaskError> {
    let _ = task.url;
    Ok(())
}

async fn embed_texts(tasks: Vec<(EmbedText, TaskContext)>) -> Vec<Result<(), TaskError>> {
    tasks.iter().map(|_| Ok(())).collect()
}

struct Pinger;

#[mq_core::async_trait]
impl Handler<Ping> for Pinger {
    async fn handle(&self, _task: Ping, _ctx: TaskContext) -> Result<(), TaskError> {
        Ok(())
    }
}

#[allow(dead_code)]
async fn register() -> mq_core::Result<Worker> {
    Worker::builder("redis://127.0.0.1/")
        .handle(embed)
        .handle(batch(32, Duration::from_millis(20), embed_texts))
        .handle(|task: Translate, _ctx: TaskContext| async move {
            let _ = task.text;
            Ok(())
        })
        .handle(Pinger)
        .build()
        .await
}

fn main() {}
