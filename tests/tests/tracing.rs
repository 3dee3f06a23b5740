//! A trace crosses the queue: the trace id of the producer's span is the trace id of the
//! worker's task span.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use mq_core::{Producer, Task, TaskContext, TaskError, Worker};
use mq_tests::{redis, run_worker, wait_until};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use serde::{Deserialize, Serialize};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;

#[derive(Debug, Serialize, Deserialize, Task)]
#[task(queue = "traced")]
struct Traced {
    n: u32,
}

/// What the handler saw: task number, trace id, span name.
type Seen = (u32, String, Option<String>);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_id_set_at_the_producer_appears_in_the_worker_task_span() {
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("mq-test")));
    tracing::subscriber::set_global_default(subscriber)
        .expect("first subscriber of this test binary");

    let server = redis();
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let s = seen.clone();
    let worker = Worker::builder(&server.url())
        .handle::<Traced, _>(move |t: Traced, _ctx: TaskContext| {
            let s = s.clone();
            async move {
                let span = tracing::Span::current();
                let trace_id = span.context().span().span_context().trace_id().to_string();
                let meta = span.metadata().map(|m| m.name().to_owned());
                s.lock().unwrap().push((t.n, trace_id, meta));
                Ok::<_, TaskError>(())
            }
        })
        .build()
        .await
        .unwrap();
    let running = run_worker(worker);

    let producer = Producer::connect(&server.url()).await.unwrap();
    let span = tracing::info_span!("checkout");
    let producer_trace = span.context().span().span_context().trace_id().to_string();
    async {
        producer.enqueue(Traced { n: 1 }).await.unwrap();
    }
    .instrument(span)
    .await;
    // Outside any span: no traceparent, the task gets a trace of its own.
    producer.enqueue(Traced { n: 2 }).await.unwrap();

    wait_until(Duration::from_secs(30), "both handled", || {
        let s = seen.clone();
        async move { s.lock().unwrap().len() == 2 }
    })
    .await;
    running.stop().await;
    let mut seen = seen.lock().unwrap().clone();
    seen.sort();
    assert_ne!(producer_trace, "00000000000000000000000000000000");
    assert_eq!(seen[0].0, 1);
    assert_eq!(
        seen[0].1, producer_trace,
        "the task span continues the producer's trace"
    );
    assert_eq!(seen[0].2.as_deref(), Some("task"));
    assert_ne!(
        seen[1].1, producer_trace,
        "an untraced enqueue starts a new trace"
    );
}
