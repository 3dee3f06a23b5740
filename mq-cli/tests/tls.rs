//! `mq` against a TLS `redis-server`: `--tls-ca`, `--tls-cert`, `--tls-key` and their
//! environment variables, and the one-line errors for a wrong CA or a missing client
//! certificate.

use std::{process::Output, time::Duration};

use mq_tests::tls::TlsRedis;

/// Runs `mq` with `args` and the environment `env` (bounded: 30 s).
async fn mq(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_mq"));
    cmd.args(args)
        .env_remove("MQ_REDIS_URL")
        .env_remove("MQ_TLS_CA")
        .env_remove("MQ_TLS_CERT")
        .env_remove("MQ_TLS_KEY")
        .envs(env.iter().copied())
        .kill_on_drop(true);
    tokio::time::timeout(Duration::from_secs(30), cmd.output())
        .await
        .expect("mq finishes in time")
        .expect("run mq")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_enqueues_and_reads_stats_over_mutual_tls() {
    let server = TlsRedis::start(&["localhost"], true);
    let url = server.url("localhost");
    let ca = server.certs.file("ca.pem");
    let cert = server.certs.file("client.pem");
    let key = server.certs.file("client.key");
    let (ca, cert, key) = (
        ca.to_str().expect("path"),
        cert.to_str().expect("path"),
        key.to_str().expect("path"),
    );

    // Flags.
    let out = mq(
        &[
            "--url",
            &url,
            "--tls-ca",
            ca,
            "--tls-cert",
            cert,
            "--tls-key",
            key,
            "enqueue",
            "secure",
            "ping",
            r#"{"n":1}"#,
        ],
        &[],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));

    // Environment variables.
    let env = [
        ("MQ_REDIS_URL", url.as_str()),
        ("MQ_TLS_CA", ca),
        ("MQ_TLS_CERT", cert),
        ("MQ_TLS_KEY", key),
    ];
    let out = mq(&["--json", "stats", "--sample", "0"], &env).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(stats.to_string().contains("\"secure\""), "{stats}");

    // Without the client certificate: one line naming the cause.
    let out = mq(&["--url", &url, "--tls-ca", ca, "stats"], &[]).await;
    assert_eq!(out.status.code(), Some(1));
    let text = stderr(&out);
    assert!(text.contains("cannot connect to Redis at"), "{text}");
    assert!(text.contains("requires a client certificate"), "{text}");
    assert_eq!(text.trim().lines().count(), 1, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_reports_a_wrong_ca_in_one_line() {
    let server = TlsRedis::start(&["localhost"], false);
    let url = server.url("localhost");
    let other = server.certs.file("other-ca.pem");
    let out = mq(
        &[
            "--url",
            &url,
            "--tls-ca",
            other.to_str().expect("path"),
            "workers",
        ],
        &[],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    let text = stderr(&out);
    assert!(
        text.contains("certificate signed by unknown authority"),
        "{text}"
    );

    // A certificate without its key is a command-line error.
    let cert = server.certs.file("client.pem");
    let out = mq(
        &[
            "--url",
            &url,
            "--tls-cert",
            cert.to_str().expect("path"),
            "workers",
        ],
        &[],
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--tls-key"), "{}", stderr(&out));
}
