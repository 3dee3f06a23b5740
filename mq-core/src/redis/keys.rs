//! Every Redis key mq uses. All keys of one queue share the hash tag `{queue}`, so each Lua
//! script touches one slot and works unchanged on Redis Cluster.

/// Default key prefix: `mq`.
pub const DEFAULT_PREFIX: &str = "mq";
/// Default consumer group name: `mq`.
pub const DEFAULT_GROUP: &str = "mq";

/// The keys of one queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueKeys {
    /// The queue name.
    pub queue: String,
    /// `{prefix}:{queue}:stream`: ready and in-flight tasks.
    pub stream: String,
    /// `{prefix}:{queue}:delayed`: scheduled and retrying tasks, score = due time (unix ms).
    pub delayed: String,
    /// `{prefix}:{queue}:dead`: dead-lettered tasks.
    pub dead: String,
    /// `{prefix}:{queue}:wake`: a Pub/Sub channel (not a key). Scripts that make a delayed
    /// task the earliest one publish its due time (unix ms) here, and workers' promoters wake
    /// up for it.
    pub wake: String,
}

impl QueueKeys {
    /// The keys of `queue` under `prefix`.
    ///
    /// ```
    /// let k = mq_core::redis::keys::QueueKeys::new("mq", "images");
    /// assert_eq!(k.stream, "mq:{images}:stream");
    /// assert_eq!(k.delayed, "mq:{images}:delayed");
    /// assert_eq!(k.dead, "mq:{images}:dead");
    /// ```
    pub fn new(prefix: &str, queue: &str) -> Self {
        Self {
            queue: queue.to_owned(),
            stream: format!("{prefix}:{{{queue}}}:stream"),
            delayed: format!("{prefix}:{{{queue}}}:delayed"),
            dead: format!("{prefix}:{{{queue}}}:dead"),
            wake: format!("{prefix}:{{{queue}}}:wake"),
        }
    }
}

/// `{prefix}:workers`: hash of live workers, consumer name -> description.
pub fn workers_key(prefix: &str) -> String {
    format!("{prefix}:workers")
}

/// `{prefix}:worker:{consumer}`: a worker's heartbeat, a string with a TTL.
pub fn worker_key(prefix: &str, consumer: &str) -> String {
    format!("{prefix}:worker:{consumer}")
}

/// Checks a queue name: non-empty, at most 200 bytes of `[A-Za-z0-9_.:-]` (no braces, which
/// would break the hash tag). The derive enforces the same rule at compile time.
pub fn validate_queue_name(queue: &str) -> Result<(), String> {
    if queue.is_empty() || queue.len() > 200 {
        return Err(format!("queue name {queue:?} must be 1 to 200 bytes long"));
    }
    if let Some(c) = queue
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-')))
    {
        return Err(format!(
            "queue name {queue:?} contains {c:?}; allowed are letters, digits and _ . : -"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_share_one_hash_tag() {
        let k = QueueKeys::new("app", "q1");
        for key in [&k.stream, &k.delayed, &k.dead] {
            assert!(key.starts_with("app:{q1}:"), "{key}");
        }
    }

    #[test]
    fn queue_names_are_checked() {
        assert!(validate_queue_name("images.v2:hot-1").is_ok());
        assert!(validate_queue_name("").is_err());
        assert!(validate_queue_name("a{b}").is_err());
        assert!(validate_queue_name("a b").is_err());
        assert!(validate_queue_name(&"x".repeat(201)).is_err());
    }
}
