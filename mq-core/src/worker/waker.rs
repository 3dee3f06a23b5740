//! The waker: one Pub/Sub connection per worker, subscribed to the wake channel of each of its
//! queues (`{prefix}:{queue}:wake`). The schedule and retry scripts publish a due time there
//! when they make a delayed task the earliest of its queue; the waker then wakes that queue's
//! promoter, which sleeps until the new due time instead of its old one. Losing the connection
//! costs only precision: promoters still look at least every `promote_interval`, and after a
//! reconnect every promoter is woken once for what it may have missed.

use std::{collections::HashMap, sync::Arc};

use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::state::{sleep_or_cancel, QueueState, Shared};
use crate::retry::error_backoff;

pub(super) async fn run(
    shared: Arc<Shared>,
    queues: Vec<Arc<QueueState>>,
    stop: CancellationToken,
) {
    let by_channel: HashMap<String, Arc<QueueState>> = queues
        .iter()
        .map(|q| (q.keys.wake.clone(), q.clone()))
        .collect();
    let mut failures = 0u32;
    // On a cluster, `PUBLISH` reaches every node: subscribe at one seed, the next one after a
    // failure.
    let mut node = 0;
    loop {
        let client = shared.endpoint.node_client(node).clone();
        node += 1;
        let subscribed = async {
            let mut pubsub = client.get_async_pubsub().await?;
            for channel in by_channel.keys() {
                pubsub.subscribe(channel).await?;
            }
            redis::RedisResult::Ok(pubsub)
        };
        let pubsub = tokio::select! {
            _ = stop.cancelled() => return,
            r = subscribed => r,
        };
        match pubsub {
            Ok(pubsub) => {
                failures = 0;
                // Whatever was published while not subscribed: look again now.
                for q in &queues {
                    q.wake.notify_one();
                }
                let mut messages = pubsub.into_on_message();
                loop {
                    let msg = tokio::select! {
                        _ = stop.cancelled() => return,
                        m = messages.next() => m,
                    };
                    let Some(msg) = msg else { break };
                    if let Some(q) = by_channel.get(msg.get_channel_name()) {
                        q.wake.notify_one();
                    }
                }
                tracing::debug!("wake subscription closed; resubscribing");
            }
            Err(e) => {
                tracing::debug!(error = %e, "cannot subscribe to wake channels; promoters poll meanwhile");
            }
        }
        if !sleep_or_cancel(error_backoff(failures), &stop).await {
            return;
        }
        failures += 1;
    }
}
