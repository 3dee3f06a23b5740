//! A local Redis Cluster for the integration tests: three masters and three replicas, each a
//! [`LocalRedis`] with `--cluster-enabled yes` in its own temporary directory on a loopback
//! port, joined with `redis-cli --cluster create`. Every node is killed when the cluster is
//! dropped, also when a test panics.
//!
//! The server binary is the one [`LocalRedis`] starts ([`server_binary`]); the client that
//! joins the nodes is [`cli_binary`].

use std::{
    fs::File,
    io,
    net::TcpListener,
    path::Path,
    process::{Command, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use crate::local_redis::{server_binary, tail, LocalRedis, LocalRedisError};

/// Number of nodes: three masters, each with one replica.
const NODES: usize = 6;
/// Number of hash slots of a Redis Cluster.
const SLOTS: usize = 16384;
/// The cluster bus of a node listens on its port plus this.
const BUS_OFFSET: u16 = 10000;
/// Node ports are taken from `PORT_MIN..PORT_MIN + PORT_SPAN` (bus ports 20000..30000): the
/// two ranges do not overlap and both lie below Linux's ephemeral range (32768..), so
/// outgoing connections never hold them.
const PORT_MIN: u16 = 10000;
const PORT_SPAN: u32 = 10000;
/// How long the cluster gets to form (after `start`, `restart`, `restart_node`): 30 s.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a node gets to exit after SIGTERM before it is killed: 15 s.
const TERM_TIMEOUT: Duration = Duration::from_secs(15);
/// Connect and read timeout of the harness's own queries to a node.
const QUERY_TIMEOUT: Duration = Duration::from_secs(1);
/// Pause between two polls of the cluster's state.
const POLL: Duration = Duration::from_millis(50);

/// The arguments every node gets, before the caller's.
const CLUSTER_ARGS: &[&str] = &[
    "--cluster-enabled",
    "yes",
    "--cluster-node-timeout",
    "1000",
    "--cluster-config-file",
    "nodes.conf",
    // A replica takes over however long it was cut off from its master (tests kill masters at
    // any time; the default refuses a failover by a replica whose data looks too old).
    "--cluster-replica-validity-factor",
    "0",
    // A master sends a (re)joining replica its data at once instead of waiting 5 s for more
    // replicas to sync with the same transfer.
    "--repl-diskless-sync-delay",
    "0",
];

/// The command-line client that joins the nodes: the `-cli` binary next to a server named
/// `…-server` in [`SERVER_ENV`](crate::local_redis::SERVER_ENV) (e.g. `valkey-cli` for
/// `valkey-server`) when there is one, else `redis-cli`.
pub fn cli_binary() -> String {
    let server = server_binary();
    let path = Path::new(&server);
    if let Some(stem) = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix("-server"))
    {
        let cli = format!("{stem}-cli");
        if server.contains('/') {
            let sibling = path.with_file_name(&cli);
            if sibling.is_file() {
                return sibling.display().to_string();
            }
        } else if on_path(&cli) {
            return cli;
        }
    }
    "redis-cli".to_owned()
}

fn on_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(name).is_file()))
}

/// A running local Redis Cluster of three masters and three replicas on `127.0.0.1`.
///
/// Nodes run with `--cluster-node-timeout 1000` (a dead master is failed over within a few
/// seconds) and `--appendonly no` unless the extra arguments say otherwise. Dropping the
/// cluster kills every node (SIGKILL) and deletes their directories.
#[derive(Debug)]
pub struct LocalCluster {
    nodes: Vec<LocalRedis>,
    /// The slots each node owned when [`kill_node`](Self::kill_node) killed it.
    killed: Vec<(u16, Vec<u16>)>,
}

impl LocalCluster {
    /// Starts six nodes and joins them into a cluster of three masters with one replica each;
    /// returns when every node reports `cluster_state:ok` with all 16384 slots served and every
    /// replica is in sync with its master.
    ///
    /// # Errors
    ///
    /// [`LocalRedisError::NotInstalled`] / [`LocalRedisError::CliNotInstalled`] when the server
    /// or `redis-cli` is missing; [`LocalRedisError::Cluster`] when the cluster is not ready
    /// within 30 s (the message names what was missing).
    pub fn start() -> Result<Self, LocalRedisError> {
        Self::start_with(&[])
    }

    /// [`start`](Self::start) with extra server arguments for every node (e.g.
    /// `["--appendonly", "yes"]`). They must not require authentication: the harness's own
    /// queries and `redis-cli` connect without a password.
    ///
    /// # Errors
    ///
    /// As [`start`](Self::start).
    pub fn start_with(args: &[&str]) -> Result<Self, LocalRedisError> {
        let args: Vec<String> = CLUSTER_ARGS
            .iter()
            .chain(args)
            .map(|s| s.to_string())
            .collect();
        let mut me = LocalCluster {
            nodes: Vec::with_capacity(NODES),
            killed: Vec::new(),
        };
        for _ in 0..NODES {
            let dir = tempfile::Builder::new().prefix("mq-cluster-").tempdir()?;
            me.nodes
                .push(LocalRedis::start_in(dir, args.clone(), cluster_port)?);
        }
        let deadline = Instant::now() + READY_TIMEOUT;
        me.create(deadline)?;
        me.wait_ready(deadline.saturating_duration_since(Instant::now()))?;
        Ok(me)
    }

    /// Runs `redis-cli --cluster create` over all nodes, bounded by `deadline`.
    fn create(&self, deadline: Instant) -> Result<(), LocalRedisError> {
        let cli = cli_binary();
        let log = self.nodes[0].dir().join("cluster-create.log");
        let out = File::create(&log)?;
        let mut cmd = Command::new(&cli);
        cmd.args(["--cluster", "create"])
            .args(self.ports().iter().map(|p| format!("127.0.0.1:{p}")))
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(LocalRedisError::CliNotInstalled(cli))
            }
            Err(e) => return Err(e.into()),
        };
        loop {
            match child.try_wait()? {
                Some(status) if status.success() => return Ok(()),
                Some(status) => {
                    return Err(LocalRedisError::Cluster(format!(
                        "`{cli} --cluster create` exited with {status}: {}",
                        tail(&log)
                    )))
                }
                None if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(LocalRedisError::Cluster(format!(
                        "`{cli} --cluster create` did not finish within {READY_TIMEOUT:?}: {}",
                        tail(&log)
                    )));
                }
                None => std::thread::sleep(POLL),
            }
        }
    }

    /// `redis+cluster://127.0.0.1:{p1},127.0.0.1:{p2},…/`: every node as a seed.
    pub fn url(&self) -> String {
        let seeds: Vec<String> = self
            .ports()
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        format!("redis+cluster://{}/", seeds.join(","))
    }

    /// `redis://127.0.0.1:{port}/` of every node (killed ones too), in start order.
    pub fn node_urls(&self) -> Vec<String> {
        self.nodes.iter().map(LocalRedis::url).collect()
    }

    /// The port of every node (killed ones too), in start order.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(LocalRedis::port).collect()
    }

    /// The ports of the live nodes that serve slots now, sorted: the owners of the slots in the
    /// newest configuration (highest config epoch) the live nodes know. A killed master is left
    /// out (its slots have no live master until its replica is promoted).
    pub fn master_ports(&self) -> Vec<u16> {
        let views = self.views();
        let live: Vec<u16> = views.iter().map(|(port, _)| *port).collect();
        let mut masters: Vec<u16> = slot_owners(&views)
            .into_iter()
            .flatten()
            .map(|(_, port)| port)
            .filter(|p| live.contains(p))
            .collect();
        masters.sort_unstable();
        masters.dedup();
        masters
    }

    /// The port of the master serving `key` now: the owner of its slot (`CLUSTER KEYSLOT`) in
    /// the newest configuration the live nodes know. Between a master's death and its
    /// replica's promotion that is still the dead master (see
    /// [`wait_failover`](Self::wait_failover)).
    ///
    /// # Panics
    ///
    /// If no live node answers within 5 s, or no node owns the slot.
    pub fn master_for_key(&self, key: &str) -> u16 {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let slot = self.live_ports().into_iter().find_map(|port| {
                query::<u16>(port, redis::cmd("CLUSTER").arg("KEYSLOT").arg(key)).ok()
            });
            let views = self.views();
            if let (Some(slot), false) = (slot, views.is_empty()) {
                match slot_owners(&views)[usize::from(slot)] {
                    Some((_, port)) => return port,
                    None => panic!("no node of the local cluster owns slot {slot} (key {key:?})"),
                }
            }
            assert!(
                Instant::now() < deadline,
                "no live node of the local cluster answered CLUSTER KEYSLOT / CLUSTER NODES"
            );
            std::thread::sleep(POLL);
        }
    }

    /// The ports of the live nodes that replicate the node on `master` now (each replica's own
    /// view of itself), sorted.
    pub fn replica_ports(&self, master: u16) -> Vec<u16> {
        let views = self.views();
        let Some(id) = views
            .iter()
            .flat_map(|(_, lines)| lines)
            .find(|l| l.port == master)
            .map(|l| l.id.clone())
        else {
            return Vec::new();
        };
        let mut replicas: Vec<u16> = views
            .iter()
            .filter_map(|(_, lines)| lines.iter().find(|l| l.has("myself")))
            .filter(|me| me.has("slave") && me.master.as_deref() == Some(id.as_str()))
            .map(|me| me.port)
            .collect();
        replicas.sort_unstable();
        replicas
    }

    /// Kills the node on `port` (SIGKILL) and keeps its directory, so that
    /// [`restart_node`](Self::restart_node) can bring it back. Remembers the slots it served
    /// for [`wait_failover`](Self::wait_failover).
    ///
    /// # Panics
    ///
    /// If no node of this cluster has that port.
    pub fn kill_node(&mut self, port: u16) {
        let owners = slot_owners(&self.views());
        let slots: Vec<u16> = (0..SLOTS)
            .filter(|&s| owners[s].is_some_and(|(_, p)| p == port))
            .filter_map(|s| u16::try_from(s).ok())
            .collect();
        self.node_mut(port).stop();
        self.killed.retain(|(p, _)| *p != port);
        self.killed.push((port, slots));
    }

    /// Starts the node on `port` again with the same arguments, directory (its `nodes.conf`,
    /// AOF) and port, and waits (30 s at most) until the live nodes are healthy again: a
    /// master that was failed over comes back as a replica of its successor and must be in
    /// sync.
    ///
    /// # Errors
    ///
    /// When the node does not start (e.g. its port was taken meanwhile) or the cluster is not
    /// healthy within 30 s.
    ///
    /// # Panics
    ///
    /// If no node of this cluster has that port.
    pub fn restart_node(&mut self, port: u16) -> Result<(), LocalRedisError> {
        let node = self.node_mut(port);
        node.stop();
        node.spawn()?;
        self.wait_ready(READY_TIMEOUT)
    }

    /// Waits at most `timeout` until the slots the master on `old_port` served when it was
    /// killed ([`kill_node`](Self::kill_node)) are served by one other live master (its
    /// replica, promoted) and every live node reports `cluster_state:ok`; returns the new
    /// master's port.
    ///
    /// # Errors
    ///
    /// [`LocalRedisError::Cluster`] if `old_port` was not a master killed with `kill_node`, or
    /// no failover completed in time (the message says what was still missing).
    pub fn wait_failover(&self, old_port: u16, timeout: Duration) -> Result<u16, LocalRedisError> {
        let Some((_, slots)) = self.killed.iter().find(|(p, _)| *p == old_port) else {
            return Err(LocalRedisError::Cluster(format!(
                "node {old_port} was not killed with kill_node"
            )));
        };
        let Some(&first) = slots.first() else {
            return Err(LocalRedisError::Cluster(format!(
                "node {old_port} served no slots when it was killed"
            )));
        };
        let deadline = Instant::now() + timeout;
        loop {
            let problem = match self.failover_state(old_port, first, slots) {
                Ok(new) => return Ok(new),
                Err(problem) => problem,
            };
            if Instant::now() >= deadline {
                return Err(LocalRedisError::Cluster(format!(
                    "no failover of master {old_port} within {timeout:?}: {problem}"
                )));
            }
            std::thread::sleep(POLL);
        }
    }

    /// The new master of `slots` (formerly `old_port`'s) if the failover is complete, else
    /// what is missing.
    fn failover_state(&self, old_port: u16, first: u16, slots: &[u16]) -> Result<u16, String> {
        let views = self.views();
        let owners = slot_owners(&views);
        let Some((_, new)) = owners[usize::from(first)] else {
            return Err(format!("no node owns slot {first}"));
        };
        if new == old_port {
            return Err(format!("slot {first} is still served by {old_port}"));
        }
        if let Some(s) = slots
            .iter()
            .find(|&&s| owners[usize::from(s)].map(|(_, p)| p) != Some(new))
        {
            return Err(format!("slot {s} is not served by {new} yet"));
        }
        let new_is_master = views
            .iter()
            .find(|(port, _)| *port == new)
            .and_then(|(_, lines)| lines.iter().find(|l| l.has("myself")))
            .is_some_and(|me| me.has("master"));
        if !new_is_master {
            return Err(format!("{new} does not answer as a master"));
        }
        self.live_ports()
            .into_iter()
            .try_for_each(|port| cluster_ok(port).map_err(|e| format!("node {port}: {e}")))?;
        Ok(new)
    }

    /// Stops every node gracefully (SIGTERM, all at once; each gets 15 s to write its AOF and
    /// `nodes.conf` before it is killed). Directories and ports are kept for
    /// [`restart`](Self::restart).
    pub fn stop(&mut self) {
        std::thread::scope(|s| {
            for node in &mut self.nodes {
                s.spawn(|| node.terminate(TERM_TIMEOUT));
            }
        });
    }

    /// Stops every node ([`stop`](Self::stop)) and starts them all again on the same ports and
    /// directories; waits (30 s at most) until the cluster is healthy.
    ///
    /// # Errors
    ///
    /// When a node does not start (e.g. its port was taken meanwhile) or the cluster is not
    /// healthy within 30 s.
    pub fn restart(&mut self) -> Result<(), LocalRedisError> {
        self.stop();
        for node in &mut self.nodes {
            node.spawn()?;
        }
        self.wait_ready(READY_TIMEOUT)
    }

    /// Waits at most `timeout` until the live nodes form a healthy cluster: each reports
    /// `cluster_state:ok` with all 16384 slots served and knows all six nodes, none sees a live
    /// node as failing, each live replica is in sync with its master, and (when all six nodes
    /// run) each master has a replica.
    ///
    /// # Errors
    ///
    /// [`LocalRedisError::Cluster`] naming what was still missing at the deadline.
    pub fn wait_ready(&self, timeout: Duration) -> Result<(), LocalRedisError> {
        let deadline = Instant::now() + timeout;
        loop {
            let problem = match self.readiness() {
                Ok(()) => return Ok(()),
                Err(problem) => problem,
            };
            if Instant::now() >= deadline {
                return Err(LocalRedisError::Cluster(format!(
                    "not ready within {timeout:?}: {problem}"
                )));
            }
            std::thread::sleep(POLL);
        }
    }

    /// `Ok` when the cluster is healthy (see [`wait_ready`](Self::wait_ready)), else the first
    /// problem found.
    fn readiness(&self) -> Result<(), String> {
        let running: Vec<u16> = self
            .nodes
            .iter()
            .filter(|n| n.is_running())
            .map(LocalRedis::port)
            .collect();
        let mut views = Vec::new();
        for &port in &running {
            cluster_ok(port).map_err(|e| format!("node {port}: {e}"))?;
            let text: String = query(port, redis::cmd("CLUSTER").arg("NODES"))
                .map_err(|e| format!("node {port}: CLUSTER NODES: {e}"))?;
            let lines = parse_nodes(&text);
            if lines.len() != NODES {
                return Err(format!("node {port} knows {} nodes", lines.len()));
            }
            for line in lines.iter().filter(|l| running.contains(&l.port)) {
                if let Some(flag) = ["fail", "fail?", "handshake", "noaddr"]
                    .into_iter()
                    .find(|f| line.has(f))
                {
                    return Err(format!("node {port} flags node {} {flag}", line.port));
                }
            }
            let me = lines
                .iter()
                .find(|l| l.has("myself"))
                .ok_or_else(|| format!("node {port} does not list itself"))?;
            if me.has("slave") {
                let info: String = query(port, redis::cmd("INFO").arg("replication"))
                    .map_err(|e| format!("node {port}: INFO: {e}"))?;
                if field(&info, "master_link_status") != Some("up") {
                    return Err(format!("replica {port} is not in sync with its master"));
                }
            }
            views.push((port, lines));
        }
        let owners = slot_owners(&views);
        if let Some(slot) = owners
            .iter()
            .position(|o| !o.is_some_and(|(_, p)| running.contains(&p)))
        {
            return Err(format!("slot {slot} has no live master"));
        }
        if running.len() == NODES {
            let mut masters: Vec<u16> = owners.iter().flatten().map(|(_, p)| *p).collect();
            masters.sort_unstable();
            masters.dedup();
            for master in masters {
                if self.replica_ports(master).is_empty() {
                    return Err(format!("master {master} has no replica"));
                }
            }
        }
        Ok(())
    }

    /// Ports of the nodes started and not killed.
    fn live_ports(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .filter(|n| n.is_running())
            .map(LocalRedis::port)
            .collect()
    }

    /// `CLUSTER NODES` of every live node that answers: (its port, its view).
    fn views(&self) -> Vec<(u16, Vec<NodeLine>)> {
        self.live_ports()
            .into_iter()
            .filter_map(|port| {
                query::<String>(port, redis::cmd("CLUSTER").arg("NODES"))
                    .ok()
                    .map(|text| (port, parse_nodes(&text)))
            })
            .collect()
    }

    fn node_mut(&mut self, port: u16) -> &mut LocalRedis {
        match self.nodes.iter_mut().find(|n| n.port() == port) {
            Some(node) => node,
            None => panic!("no node of the local cluster on port {port}"),
        }
    }
}

/// A port for a node whose cluster bus port (+10000) is free too. Successive calls walk the
/// range from a per-process start, so tests running in parallel get different ports.
fn cluster_port() -> io::Result<u16> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let seed = std::process::id().wrapping_mul(7919);
    for _ in 0..PORT_SPAN {
        let offset = seed.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed)) % PORT_SPAN;
        let port = PORT_MIN + u16::try_from(offset).unwrap_or(0);
        if bindable(port) && bindable(port + BUS_OFFSET) {
            return Ok(port);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AddrInUse,
        "no free port pair (port, port + 10000) for a cluster node",
    ))
}

fn bindable(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// One query on a fresh connection to the node on `port`, bounded by [`QUERY_TIMEOUT`].
fn query<T: redis::FromRedisValue>(port: u16, cmd: &redis::Cmd) -> redis::RedisResult<T> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/"))?;
    let mut conn = client.get_connection_with_timeout(QUERY_TIMEOUT)?;
    conn.set_read_timeout(Some(QUERY_TIMEOUT))?;
    conn.set_write_timeout(Some(QUERY_TIMEOUT))?;
    cmd.query(&mut conn)
}

/// `Ok` if the node on `port` reports `cluster_state:ok` with every slot served.
fn cluster_ok(port: u16) -> Result<(), String> {
    let info: String =
        query(port, redis::cmd("CLUSTER").arg("INFO")).map_err(|e| format!("CLUSTER INFO: {e}"))?;
    if field(&info, "cluster_state") != Some("ok") {
        return Err(format!(
            "cluster_state:{}",
            field(&info, "cluster_state").unwrap_or("?")
        ));
    }
    let served = field(&info, "cluster_slots_ok").unwrap_or("0");
    if served != SLOTS.to_string() {
        return Err(format!("cluster_slots_ok:{served}"));
    }
    Ok(())
}

/// The value of `name` in an `INFO`-style `name:value` text.
fn field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

/// One line of `CLUSTER NODES`.
#[derive(Debug, Clone)]
struct NodeLine {
    id: String,
    port: u16,
    flags: Vec<String>,
    /// The id of its master, for a replica.
    master: Option<String>,
    config_epoch: u64,
    /// Slot ranges it serves (inclusive).
    slots: Vec<(u16, u16)>,
}

impl NodeLine {
    fn has(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }
}

/// Parses `CLUSTER NODES`: `<id> <ip:port@cport[,hostname]> <flags> <master> <ping-sent>
/// <pong-recv> <config-epoch> <link-state> <slot>...`; lines it cannot read are skipped.
fn parse_nodes(text: &str) -> Vec<NodeLine> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 8 {
                return None;
            }
            let port = fields[1]
                .split('@')
                .next()?
                .rsplit(':')
                .next()?
                .parse()
                .ok()?;
            let slots = fields[8..]
                .iter()
                .filter(|s| !s.starts_with('['))
                .filter_map(|s| match s.split_once('-') {
                    Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                    None => s.parse().ok().map(|n| (n, n)),
                })
                .collect();
            Some(NodeLine {
                id: fields[0].to_owned(),
                port,
                flags: fields[2].split(',').map(str::to_owned).collect(),
                master: (fields[3] != "-").then(|| fields[3].to_owned()),
                config_epoch: fields[6].parse().unwrap_or(0),
                slots,
            })
        })
        .collect()
}

/// For each slot, the (config epoch, port) of the master that serves it in the newest
/// configuration any of `views` knows: the rule by which a cluster settles competing claims.
fn slot_owners(views: &[(u16, Vec<NodeLine>)]) -> Vec<Option<(u64, u16)>> {
    let mut owners: Vec<Option<(u64, u16)>> = vec![None; SLOTS];
    for line in views
        .iter()
        .flat_map(|(_, lines)| lines)
        .filter(|l| l.has("master"))
    {
        for &(from, to) in &line.slots {
            let range = usize::from(from)..=usize::from(to);
            for owner in owners.get_mut(range).into_iter().flatten() {
                if owner.is_none_or(|(epoch, _)| line.config_epoch > epoch) {
                    *owner = Some((line.config_epoch, line.port));
                }
            }
        }
    }
    owners
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cluster_nodes_and_picks_the_newest_owner() {
        let old = "a1 127.0.0.1:10001@20001 myself,master - 0 0 1 connected 0-5460 7 [9->-b2]\n\
                   b2 127.0.0.1:10002@20002,host slave a1 0 0 1 connected\n";
        let new = "a1 127.0.0.1:10001@20001 master,fail - 0 0 1 disconnected\n\
                   b2 127.0.0.1:10002@20002 myself,master - 0 0 7 connected 0-5460\n";
        let lines = parse_nodes(old);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].slots, vec![(0, 5460), (7, 7)]);
        assert_eq!(lines[1].port, 10002);
        assert_eq!(lines[1].master.as_deref(), Some("a1"));
        let owners = slot_owners(&[(10001, lines), (10002, parse_nodes(new))]);
        assert_eq!(owners[0], Some((7, 10002)));
        assert_eq!(owners[5461], None);
    }

    #[test]
    fn reads_info_fields() {
        let info = "# Cluster\r\ncluster_state:ok\r\ncluster_slots_ok:16384\r\n";
        assert_eq!(field(info, "cluster_state"), Some("ok"));
        assert_eq!(field(info, "cluster_slots_ok"), Some("16384"));
        assert_eq!(field(info, "cluster_slots"), None);
    }
}
