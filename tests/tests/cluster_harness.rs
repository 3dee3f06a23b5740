//! The local Redis Cluster harness against real servers: it forms a healthy 3+3 cluster,
//! reports which master serves a key, fails a killed master over to its replica, keeps AOF
//! data across a restart, and kills its nodes when a test panics.

use std::time::{Duration, Instant};

use mq_tests::{cluster, cluster_with, LocalCluster};

/// A connection to one node.
fn node(port: u16) -> redis::Connection {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).expect("url");
    let conn = client
        .get_connection_with_timeout(Duration::from_secs(2))
        .expect("connect to node");
    conn.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    conn
}

fn cluster_info(port: u16, name: &str) -> String {
    let info: String = redis::cmd("CLUSTER")
        .arg("INFO")
        .query(&mut node(port))
        .expect("CLUSTER INFO");
    info.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// Hash tags `{t0}`, `{t1}`, ... until one per master: (tag, its master's port).
fn one_tag_per_master(cluster: &LocalCluster) -> Vec<(String, u16)> {
    let masters = cluster.master_ports();
    let mut found: Vec<(String, u16)> = Vec::new();
    for i in 0..1000 {
        let tag = format!("{{t{i}}}");
        let port = cluster.master_for_key(&tag);
        if !found.iter().any(|(_, p)| *p == port) {
            found.push((tag, port));
        }
        if found.len() == masters.len() {
            break;
        }
    }
    found
}

#[test]
fn cluster_starts_with_three_masters_each_with_a_replica_covering_every_slot() {
    let t = Instant::now();
    let cluster = cluster();
    eprintln!("cluster ready after {:?}", t.elapsed());

    let ports = cluster.ports();
    assert_eq!(ports.len(), 6);
    let masters = cluster.master_ports();
    assert_eq!(masters.len(), 3, "masters: {masters:?}");
    let mut replicas = Vec::new();
    for &m in &masters {
        let r = cluster.replica_ports(m);
        assert_eq!(r.len(), 1, "replicas of {m}: {r:?}");
        replicas.extend(r);
    }
    replicas.sort_unstable();
    replicas.dedup();
    assert_eq!(replicas.len(), 3);
    assert!(replicas.iter().all(|r| !masters.contains(r)));
    for &port in &ports {
        assert_eq!(cluster_info(port, "cluster_state"), "ok", "node {port}");
        assert_eq!(cluster_info(port, "cluster_slots_assigned"), "16384");
        assert_eq!(cluster_info(port, "cluster_slots_ok"), "16384");
        assert_eq!(cluster_info(port, "cluster_known_nodes"), "6");
    }
    let url = cluster.url();
    assert!(
        url.starts_with("redis+cluster://") && url.ends_with('/'),
        "{url}"
    );
    for port in &ports {
        assert!(url.contains(&format!("127.0.0.1:{port}")), "{url}");
    }
    assert_eq!(
        cluster.node_urls(),
        ports
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}/"))
            .collect::<Vec<_>>()
    );
}

#[test]
fn keys_with_different_hash_tags_land_on_different_masters() {
    let cluster = cluster();
    let tags = one_tag_per_master(&cluster);
    assert_eq!(tags.len(), 3, "tags found: {tags:?}");
    for (tag, port) in &tags {
        let key = format!("mq:{tag}:stream");
        assert_eq!(cluster.master_for_key(&key), *port, "{key}");
        let _: () = redis::cmd("SET")
            .arg(&key)
            .arg("v")
            .query(&mut node(*port))
            .expect("write at the key's master");
        // Every other master redirects it there.
        for (_, other) in tags.iter().filter(|(_, p)| p != port) {
            let err = redis::cmd("GET")
                .arg(&key)
                .query::<Option<String>>(&mut node(*other))
                .expect_err("another master must redirect");
            assert!(
                err.to_string().contains(&format!("127.0.0.1:{port}")),
                "{other} answered {err} for {key} of {port}"
            );
        }
    }
}

#[test]
fn killed_master_fails_over_to_its_replica_which_takes_writes() {
    let mut cluster = cluster();
    let key = "mq:{failover}:k";
    let old = cluster.master_for_key(key);
    let replica = cluster.replica_ports(old);
    assert_eq!(replica.len(), 1, "replicas of {old}: {replica:?}");
    let mut conn = node(old);
    let _: () = redis::cmd("SET")
        .arg(key)
        .arg("before")
        .query(&mut conn)
        .expect("SET");
    let acked: i64 = redis::cmd("WAIT")
        .arg(1)
        .arg(2000)
        .query(&mut conn)
        .expect("WAIT");
    assert_eq!(acked, 1, "the replica must have the write before the kill");

    let t = Instant::now();
    cluster.kill_node(old);
    let new = cluster
        .wait_failover(old, Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("failover of {old} to {new} after {:?}", t.elapsed());
    assert_eq!(
        new, replica[0],
        "the replica of the killed master took over"
    );
    assert_eq!(cluster.master_for_key(key), new);
    assert!(!cluster.master_ports().contains(&old));
    assert_eq!(cluster.master_ports().len(), 3);

    let mut conn = node(new);
    let value: String = redis::cmd("GET").arg(key).query(&mut conn).expect("GET");
    assert_eq!(value, "before");
    let _: () = redis::cmd("SET")
        .arg(key)
        .arg("after")
        .query(&mut conn)
        .expect("the new master takes writes");

    // The old master comes back as a replica of its successor, in sync.
    let t = Instant::now();
    cluster.restart_node(old).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("old master {old} rejoined after {:?}", t.elapsed());
    assert_eq!(cluster.replica_ports(new), vec![old]);
    assert_eq!(cluster.master_for_key(key), new);
}

#[test]
fn restart_keeps_appendonly_data_and_returns_to_a_healthy_cluster() {
    let mut cluster = cluster_with(&["--appendonly", "yes"]);
    let tags = one_tag_per_master(&cluster);
    assert_eq!(tags.len(), 3);
    for (tag, port) in &tags {
        let _: () = redis::cmd("SET")
            .arg(format!("{tag}:k"))
            .arg(port)
            .query(&mut node(*port))
            .expect("SET");
    }
    let masters = cluster.master_ports();

    let t = Instant::now();
    cluster.stop();
    eprintln!("stopped after {:?}", t.elapsed());
    for port in cluster.ports() {
        assert!(
            redis::Client::open(format!("redis://127.0.0.1:{port}/"))
                .expect("url")
                .get_connection_with_timeout(Duration::from_millis(200))
                .is_err(),
            "node {port} still answers after stop"
        );
    }
    let t = Instant::now();
    cluster.restart().unwrap_or_else(|e| panic!("{e}"));
    eprintln!("restarted after {:?}", t.elapsed());

    assert_eq!(cluster.master_ports(), masters);
    for port in cluster.ports() {
        assert_eq!(cluster_info(port, "cluster_state"), "ok", "node {port}");
    }
    for (tag, port) in &tags {
        let key = format!("{tag}:k");
        let at = cluster.master_for_key(&key);
        let value: u16 = redis::cmd("GET")
            .arg(&key)
            .query(&mut node(at))
            .expect("GET after restart");
        assert_eq!(value, *port, "{key}");
    }
}

#[test]
fn nodes_are_killed_when_a_test_panics() {
    let ports = std::thread::spawn(|| {
        let cluster = cluster();
        let ports = cluster.ports();
        std::panic::resume_unwind(Box::new(ports))
    })
    .join()
    .expect_err("the thread panics")
    .downcast::<Vec<u16>>()
    .expect("the panic carries the ports");
    for port in *ports {
        assert!(
            redis::Client::open(format!("redis://127.0.0.1:{port}/"))
                .expect("url")
                .get_connection_with_timeout(Duration::from_millis(200))
                .is_err(),
            "node {port} still answers after the panic"
        );
    }
}
