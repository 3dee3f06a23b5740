//! TLS (`rediss://`) against a real `redis-server` with a TLS port and certificates made for
//! the test: worker, producer and admin over TLS, mutual TLS, and the errors for a wrong CA,
//! a wrong host name and a missing client certificate.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use mq_core::{redis::conn::TlsError, Admin, Error, Producer, Task, TaskError, TlsOptions, Worker};
use mq_tests::{run_worker, tls::TlsRedis, wait_until};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize, Task)]
#[task(queue = "secure")]
struct Secure {
    n: u32,
}

const WAIT: Duration = Duration::from_secs(30);
/// A TLS failure must be reported at once, not after the start-up timeout's retries.
const FAIL_FAST: Duration = Duration::from_secs(10);

/// A worker counting the tasks it handled.
fn counting_worker(url: &str, tls: TlsOptions, count: Arc<AtomicUsize>) -> mq_core::WorkerBuilder {
    Worker::builder(url)
        .tls(tls)
        .startup_timeout(Duration::from_secs(20))
        .handle::<Secure, _>(move |_t: Secure, _ctx: mq_core::TaskContext| {
            let count = count.clone();
            async move {
                count.fetch_add(1, Ordering::SeqCst);
                Ok::<_, TaskError>(())
            }
        })
}

/// Producer, worker (its data, fetch, lease, pool, Pub/Sub and sampler connections), and
/// admin over `rediss://` with the test CA: tasks, delayed ones included, are handled.
async fn run_tasks_over_tls(url: &str, tls: TlsOptions) {
    let producer = Producer::builder(url)
        .tls(tls.clone())
        .connect()
        .await
        .expect("producer over TLS");
    let count = Arc::new(AtomicUsize::new(0));
    let worker = counting_worker(url, tls.clone(), count.clone())
        .build()
        .await
        .expect("worker over TLS");
    let metrics = worker.metrics();
    let running = run_worker(worker);
    for n in 0..20 {
        producer.enqueue(Secure { n }).await.expect("enqueue");
    }
    // The promoter moves delayed tasks with a pooled connection.
    producer
        .enqueue_in(Duration::from_millis(200), Secure { n: 20 })
        .await
        .expect("enqueue delayed");
    wait_until(WAIT, "21 tasks handled over TLS", || {
        let n = count.load(Ordering::SeqCst);
        async move { n == 21 }
    })
    .await;

    let admin = Admin::connect_with_tls(url, "mq", "mq", &tls)
        .await
        .expect("admin over TLS");
    wait_until(WAIT, "admin sees an empty queue", || {
        let admin = &admin;
        async move {
            let s = admin.stats("secure").await.expect("stats");
            s.backlog == 0 && s.pending == 0 && s.delayed == 0
        }
    })
    .await;
    let workers = admin.workers().await.expect("workers");
    assert!(
        workers.iter().any(|w| w.live && w.queues == ["secure"]),
        "admin sees the worker: {workers:?}"
    );
    // The metrics sampler reads the queue through its own TLS connection.
    wait_until(WAIT, "sampler reports one live worker", || {
        let text = metrics.render();
        async move { text.lines().any(|l| l == "mq_workers 1") }
    })
    .await;
    running.stop().await;
    assert_eq!(count.load(Ordering::SeqCst), 21);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_producer_and_admin_run_tasks_over_tls() {
    let server = TlsRedis::start(&["localhost"], false);
    let url = server.url("localhost");
    run_tasks_over_tls(&url, server.certs.ca_only()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_with_a_client_certificate_works_and_without_one_fails_clearly() {
    let server = TlsRedis::start(&["localhost"], true);
    let url = server.url("localhost");
    run_tasks_over_tls(&url, server.certs.mutual()).await;

    let started = Instant::now();
    let err = Producer::builder(&url)
        .tls(server.certs.ca_only())
        .connect()
        .await
        .expect_err("no client certificate");
    assert!(
        started.elapsed() < FAIL_FAST,
        "took {:?}",
        started.elapsed()
    );
    assert!(
        matches!(err, Error::Tls(TlsError::ClientRejected { .. })),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains("requires a client certificate"), "{text}");

    let started = Instant::now();
    let err = counting_worker(&url, server.certs.ca_only(), Arc::default())
        .build()
        .await
        .expect_err("worker without client certificate");
    assert!(
        started.elapsed() < FAIL_FAST,
        "took {:?}",
        started.elapsed()
    );
    assert!(
        matches!(err, Error::Tls(TlsError::ClientRejected { .. })),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_ca_is_a_clear_error_naming_the_cause() {
    let server = TlsRedis::start(&["localhost"], false);
    let url = server.url("localhost");
    let wrong = TlsOptions::ca_file(server.certs.file("other-ca.pem"));

    let err = Producer::builder(&url)
        .tls(wrong.clone())
        .connect()
        .await
        .expect_err("wrong CA");
    assert!(
        matches!(err, Error::Tls(TlsError::UnknownAuthority { .. })),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.starts_with("certificate signed by unknown authority"),
        "{text}"
    );
    assert!(
        text.contains(&format!("localhost:{}", server.tls_port())),
        "{text}"
    );

    let started = Instant::now();
    let err = counting_worker(&url, wrong.clone(), Arc::default())
        .build()
        .await
        .expect_err("worker with wrong CA");
    assert!(
        started.elapsed() < FAIL_FAST,
        "not retried: {:?}",
        started.elapsed()
    );
    assert!(
        err.to_string()
            .starts_with("certificate signed by unknown authority"),
        "{err}"
    );

    let err = Admin::connect_with_tls(&url, "mq", "mq", &wrong)
        .await
        .expect_err("admin with wrong CA");
    assert!(
        matches!(err, Error::Tls(TlsError::UnknownAuthority { .. })),
        "{err:?}"
    );

    // Without a CA file the system's roots are used, which do not know the test CA either.
    let err = Producer::connect(&url).await.expect_err("system roots");
    assert!(
        matches!(err, Error::Tls(TlsError::UnknownAuthority { .. })),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_host_name_is_a_clear_error_naming_the_cause() {
    // The certificate names "localhost" only; the URL says 127.0.0.1.
    let server = TlsRedis::start(&["localhost"], false);
    let url = server.url("127.0.0.1");
    let err = Producer::builder(&url)
        .tls(server.certs.ca_only())
        .connect()
        .await
        .expect_err("wrong host name");
    assert!(
        matches!(err, Error::Tls(TlsError::HostNameMismatch { .. })),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.starts_with("host name mismatch"), "{text}");
    assert!(
        text.contains("127.0.0.1") && text.contains("localhost"),
        "{text}"
    );

    let started = Instant::now();
    let err = counting_worker(&url, server.certs.ca_only(), Arc::default())
        .build()
        .await
        .expect_err("worker with wrong host name");
    assert!(
        started.elapsed() < FAIL_FAST,
        "not retried: {:?}",
        started.elapsed()
    );
    assert!(err.to_string().starts_with("host name mismatch"), "{err}");

    // And the other way round: a certificate for 127.0.0.1 only, reached as localhost.
    let server = TlsRedis::start(&["127.0.0.1"], false);
    let err = Producer::builder(&server.url("localhost"))
        .tls(server.certs.ca_only())
        .connect()
        .await
        .expect_err("wrong host name");
    assert!(err.to_string().starts_with("host name mismatch"), "{err}");
    // The name it lists works.
    Producer::builder(&server.url("127.0.0.1"))
        .tls(server.certs.ca_only())
        .connect()
        .await
        .expect("the certificate's own address");
}

#[tokio::test]
async fn bad_tls_settings_are_config_errors_naming_the_problem() {
    let certs = mq_tests::tls::TestCerts::generate(&["localhost"]);
    let config_error = |r: mq_core::Result<Producer>| match r {
        Err(Error::Config(text)) => text,
        other => panic!("expected a config error, got {other:?}"),
    };
    // TLS settings with a plain URL would silently not use TLS.
    let text = config_error(
        Producer::builder("redis://127.0.0.1:1/")
            .tls(certs.ca_only())
            .connect()
            .await,
    );
    assert!(text.contains("not rediss://"), "{text}");
    let missing = certs.file("nope.pem");
    let text = config_error(
        Producer::builder("rediss://127.0.0.1:1/")
            .tls(TlsOptions::ca_file(&missing))
            .connect()
            .await,
    );
    assert!(
        text.contains("cannot read the TLS CA file") && text.contains("nope.pem"),
        "{text}"
    );
    // A key file given as the CA.
    let text = config_error(
        Producer::builder("rediss://127.0.0.1:1/")
            .tls(TlsOptions::ca_file(certs.file("client.key")))
            .connect()
            .await,
    );
    assert!(text.contains("holds no PEM certificate"), "{text}");
    // A certificate without its key.
    let text = config_error(
        Producer::builder("rediss://127.0.0.1:1/")
            .tls(TlsOptions {
                client_cert: Some(certs.file("client.pem")),
                ..certs.ca_only()
            })
            .connect()
            .await,
    );
    assert!(text.contains("needs its private key"), "{text}");
}
