use std::time::Duration;

use mq_core::{Backoff, Task, TaskOptions};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Task)]
#[task(
    queue = "images",
    name = "embed-image.v2",
    max_retries = 5,
    timeout = "1h 30m"
)]
#[task(backoff = "exponential( 500ms , 10m )")]
#[task(concurrency = 8, crate = "::mq_core")]
#[task(partitions = 4, partition_by = "product_id")]
#[task(result_ttl = "1h", events)]
struct EmbedImage {
    product_id: u64,
}

#[derive(Serialize, Deserialize, Task)]
#[task(max_retries = 0, timeout = "1.5s", backoff = "fixed(5s)")]
struct Partial;

#[derive(Serialize, Deserialize, Task)]
#[task(backoff = "none", queue = "a-b_c.d:e9")]
struct NoBackoff;

// Usable in const context.
const OPTS: TaskOptions = EmbedImage::OPTIONS;

fn main() {
    assert_eq!(EmbedImage::NAME, "embed-image.v2");
    assert_eq!(EmbedImage::QUEUE, "images");
    assert_eq!(
        OPTS,
        TaskOptions {
            max_retries: 5,
            timeout: Some(Duration::from_secs(5400)),
            backoff: Backoff::Exponential {
                base: Duration::from_millis(500),
                cap: Duration::from_secs(600),
            },
            concurrency: Some(8),
            unique_for: None,
            rate: None,
            key_concurrency: None,
            partitions: 4,
            priority: None,
            result_ttl: Some(Duration::from_secs(3600)),
            events: true,
        }
    );
    assert_eq!(
        EmbedImage { product_id: 42 }.partition_key(),
        Some("42".to_owned())
    );

    // Keys left out come from TaskOptions::DEFAULT.
    assert_eq!(Partial::QUEUE, "partial");
    assert_eq!(
        Partial::OPTIONS,
        TaskOptions {
            max_retries: 0,
            timeout: Some(Duration::from_millis(1500)),
            backoff: Backoff::Fixed(Duration::from_secs(5)),
            ..TaskOptions::DEFAULT
        }
    );
    assert_eq!(NoBackoff::QUEUE, "a-b_c.d:e9");
    assert_eq!(NoBackoff::OPTIONS.backoff, Backoff::None);
    assert_eq!(
        NoBackoff::OPTIONS.max_retries,
        TaskOptions::DEFAULT.max_retries
    );
}
