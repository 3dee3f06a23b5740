//! The example binaries never show the Redis password: not in `--help` (clap shows the value
//! of an `env` variable unless told not to), not in the lines they print while running.

use std::{
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use mq_tests::{conn, example_bin, redis};

/// The password in every URL of these tests.
const SECRET: &str = "hunter2secret";

/// Every example binary with a `--url` flag read from `MQ_REDIS_URL`.
const TAKES_REDIS_URL: [&str; 7] = [
    "demo",
    "producer",
    "image-worker",
    "text-worker",
    "text-bench",
    "jobs-worker",
    "mq-bench",
];

/// Runs `bin args` with `MQ_REDIS_URL=url`; kills it after `timeout`.
fn run(bin: &str, args: &[&str], url: &str, timeout: Duration) -> Output {
    let path = example_bin(bin);
    let mut child = Command::new(&path)
        .args(args)
        .env("MQ_REDIS_URL", url)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", path.display()));
    let deadline = Instant::now() + timeout;
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("collect output")
}

/// stdout and stderr of a finished process, as one text.
fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn example_help_hides_the_redis_password() {
    let url = format!("redis://:{SECRET}@127.0.0.1:1/");
    for bin in TAKES_REDIS_URL {
        let out = run(bin, &["--help"], &url, Duration::from_secs(30));
        let all = text(&out);
        assert!(out.status.success(), "{bin} --help failed: {all}");
        assert!(all.contains("MQ_REDIS_URL"), "{bin} --help: {all}");
        assert!(
            !all.contains(SECRET),
            "{bin} --help shows the password:\n{all}"
        );
    }
}

/// A Redis user `bench` with the password, next to the passwordless default user.
async fn user_with_password() -> (mq_examples::LocalRedis, String) {
    let server = redis();
    let mut c = conn(&server).await;
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg("bench")
        .arg("on")
        .arg(format!(">{SECRET}"))
        .arg("~*")
        .arg("&*")
        .arg("+@all")
        .query_async(&mut c)
        .await
        .expect("ACL SETUSER");
    let url = format!("redis://bench:{SECRET}@127.0.0.1:{}/", server.port());
    (server, url)
}

#[tokio::test(flavor = "multi_thread")]
async fn text_bench_does_not_print_the_redis_password() {
    let (_server, url) = user_with_password().await;
    let out = run(
        "text-bench",
        &[
            "--tasks",
            "20",
            "--batch-sizes",
            "4",
            "--timeout-secs",
            "30",
        ],
        &url,
        Duration::from_secs(60),
    );
    let all = text(&out);
    assert!(out.status.success(), "text-bench failed: {all}");
    assert!(all.contains("redis redis://bench:***@127.0.0.1:"), "{all}");
    assert!(
        !all.contains(SECRET),
        "text-bench printed the password:\n{all}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn mq_bench_does_not_print_the_redis_password() {
    let (_server, url) = user_with_password().await;
    let out = run(
        "mq-bench",
        &[
            "--tasks",
            "200",
            "--producers",
            "2",
            "--concurrency",
            "8",
            "--rate",
            "50",
            "--rate-secs",
            "1",
            "--timeout-secs",
            "30",
        ],
        &url,
        Duration::from_secs(90),
    );
    let all = text(&out);
    assert!(out.status.success(), "mq-bench failed: {all}");
    assert!(all.contains("at redis://bench:***@127.0.0.1:"), "{all}");
    assert!(
        !all.contains(SECRET),
        "mq-bench printed the password:\n{all}"
    );
}
