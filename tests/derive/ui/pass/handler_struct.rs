// A handler struct implemented with `#[mq_core::async_trait]`, registered without a turbofish,
// using `?` on a std error, on a boxed error and on mq's own error.
use std::sync::Arc;

use mq_core::{Handler, Task, TaskContext, TaskError, Worker};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Task)]
struct SendEmail {
    to: String,
}

struct Mailer {
    sent: Arc<std::sync::atomic::AtomicUsize>,
}

fn check_address(to: &str) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    if to.contains('@') {
        Ok(())
    } else {
        Err(format!("not an address: {to}").into())
    }
}

#[mq_core::async_trait]
impl Handler<SendEmail> for Mailer {
    async fn handle(&self, task: SendEmail, _ctx: TaskContext) -> Result<(), TaskError> {
        check_address(&task.to)?; // Box<dyn Error + Send + Sync>
        let _port: u16 = "25".parse()?; // a std error
        std::fs::metadata("/")?; // std::io::Error
        self.sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}

fn io_error() -> Result<(), TaskError> {
    Err(std::io::Error::other("disk full"))?;
    Ok(())
}

fn boxed_error() -> Result<(), TaskError> {
    check_address("nobody")?;
    Ok(())
}

fn mq_error() -> Result<(), TaskError> {
    Err(mq_core::Error::Config("bad".into()))?;
    Ok(())
}

#[allow(dead_code)]
async fn register() -> mq_core::Result<Worker> {
    let mailer = Mailer {
        sent: Arc::default(),
    };
    Worker::builder("redis://127.0.0.1/")
        .handle(mailer) // task type inferred from the `Handler<SendEmail>` impl
        .build()
        .await
}

fn main() {
    assert_eq!(io_error(), Err(TaskError::Retry("disk full".into())));
    assert_eq!(
        boxed_error(),
        Err(TaskError::Retry("not an address: nobody".into()))
    );
    assert_eq!(
        mq_error(),
        Err(TaskError::Retry("invalid configuration: bad".into()))
    );
}
