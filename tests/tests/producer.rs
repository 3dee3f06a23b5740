//! The producer's payload cap against a real redis-server: a payload over the cap is refused
//! with `Error::PayloadTooLarge` and nothing is written; a payload at the cap is enqueued.

use std::time::{Duration, SystemTime};

use mq_core::{producer::DEFAULT_MAX_PAYLOAD, Error, Producer, Task};
use mq_tests::{conn, redis, xlen, Conn};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize, Task)]
#[task(queue = "blobs")]
struct Blob {
    text: String,
}

/// Asserts `r` is `PayloadTooLarge` for `task` with this size and limit.
fn assert_too_large<T: std::fmt::Debug>(
    r: mq_core::Result<T>,
    task: &str,
    size: usize,
    limit: usize,
) {
    match r {
        Err(Error::PayloadTooLarge {
            task: t,
            size: s,
            limit: l,
        }) => assert_eq!((t.as_str(), s, l), (task, size, limit)),
        other => panic!("expected PayloadTooLarge, got {other:?}"),
    }
}

async fn zcard(c: &mut Conn, key: &str) -> usize {
    redis::cmd("ZCARD").arg(key).query_async(c).await.unwrap()
}

#[tokio::test]
async fn payloads_over_the_cap_are_refused_and_nothing_is_written() {
    let server = redis();
    let mut c = conn(&server).await;
    let producer = Producer::connect(&server.url()).await.unwrap();
    assert_eq!(producer.max_payload(), DEFAULT_MAX_PAYLOAD);
    let keys = producer.keys::<Blob>();
    let blob = || Blob {
        text: "x".repeat(1000),
    };
    let size = rmp_serde::to_vec_named(&blob()).unwrap().len();
    let capped = producer.clone().with_max_payload(size - 1);

    assert_too_large(capped.enqueue(blob()).await, "Blob", size, size - 1);
    assert_too_large(
        capped.enqueue_many((0..10).map(|_| blob())).await,
        "Blob",
        size,
        size - 1,
    );
    assert_too_large(
        capped.enqueue_in(Duration::from_secs(60), blob()).await,
        "Blob",
        size,
        size - 1,
    );
    assert_too_large(
        capped.enqueue_at(SystemTime::now(), blob()).await,
        "Blob",
        size,
        size - 1,
    );
    let raw = rmp_serde::to_vec_named(&blob()).unwrap();
    assert_too_large(
        capped.enqueue_raw("blobs", "Blob", raw.clone()).await,
        "Blob",
        size,
        size - 1,
    );
    assert_eq!(xlen(&mut c, &keys.stream).await, 0, "nothing in the stream");
    assert_eq!(zcard(&mut c, &keys.delayed).await, 0, "nothing delayed");

    // Exactly at the cap: accepted by every method.
    let at_cap = producer.clone().with_max_payload(size);
    at_cap.enqueue(blob()).await.unwrap();
    at_cap.enqueue_many((0..3).map(|_| blob())).await.unwrap();
    at_cap.enqueue_raw("blobs", "Blob", raw).await.unwrap();
    at_cap
        .enqueue_in(Duration::from_secs(60), blob())
        .await
        .unwrap();
    at_cap
        .enqueue_at(SystemTime::now() + Duration::from_secs(60), blob())
        .await
        .unwrap();
    assert_eq!(xlen(&mut c, &keys.stream).await, 5);
    assert_eq!(zcard(&mut c, &keys.delayed).await, 2);
}

#[tokio::test]
async fn the_default_cap_refuses_a_payload_one_byte_over() {
    let server = redis();
    let mut c = conn(&server).await;
    let producer = Producer::connect(&server.url()).await.unwrap();
    assert_too_large(
        producer
            .enqueue_raw("blobs", "Blob", vec![0xa0; DEFAULT_MAX_PAYLOAD + 1])
            .await,
        "Blob",
        DEFAULT_MAX_PAYLOAD + 1,
        DEFAULT_MAX_PAYLOAD,
    );
    assert_eq!(xlen(&mut c, &producer.keys::<Blob>().stream).await, 0);
    producer
        .enqueue_raw("blobs", "Blob", vec![0xa0; DEFAULT_MAX_PAYLOAD])
        .await
        .unwrap();
    assert_eq!(xlen(&mut c, &producer.keys::<Blob>().stream).await, 1);
}
