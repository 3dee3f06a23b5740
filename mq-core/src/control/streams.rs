//! The streams of a queue: its own, its partitions' and its priority levels'.

use crate::{
    error::{Error, Result},
    redis::{conn::Conn, keys},
};

/// The streams a task of `queue` may be in: its partitions (from `{prefix}:partitions`) and,
/// for a partitioned queue, the queue's own stream; for a partition's name, that partition.
pub(crate) async fn streams(conn: &Conn, prefix: &str, queue: &str) -> Result<Vec<String>> {
    keys::validate_queue_or_partition(queue).map_err(Error::Config)?;
    if keys::base_queue(queue) != queue {
        return Ok(vec![queue.to_owned()]);
    }
    let n: Option<u16> = redis::cmd("HGET")
        .arg(keys::partitions_key(prefix))
        .arg(queue)
        .query_async(&mut conn.clone())
        .await
        .map_err(Error::redis("HGET partitions"))?;
    let mut names: Vec<String> = match n {
        Some(n) if n > 1 => (0..n).map(|i| keys::partition_name(queue, i)).collect(),
        _ => Vec::new(),
    };
    names.push(queue.to_owned());
    Ok(names)
}
