//! The producer side: read product records, filter them and enqueue their tasks
//! ([`enqueue_records`]), `batch` tasks of a queue per `enqueue_many` call, as the file is read.

use std::time::{Duration, Instant};

use mq_core::{Producer, Task};

use super::records::{EmbedImage, EmbedText, Filtered};

/// What [`enqueue_records`] read and enqueued.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Enqueued {
    /// The filter's counts. Its `images` and `texts` stay empty: the tasks went to the queues.
    pub counts: Filtered,
    /// Valid image tasks: enqueued, or that would have been without a producer.
    pub images: u64,
    /// Valid text tasks: enqueued, or that would have been without a producer.
    pub texts: u64,
    /// Time spent in `enqueue_many` calls.
    pub enqueue_time: Duration,
}

/// Why [`enqueue_records`] stopped.
#[derive(Debug, thiserror::Error)]
pub enum ProduceError {
    /// The records could not be read.
    #[error(transparent)]
    Read(#[from] std::io::Error),
    /// Enqueueing failed; the tasks of earlier batches are enqueued.
    #[error(transparent)]
    Enqueue(#[from] mq_core::Error),
}

/// Reads product records (JSON lines), filters them (see [`Filtered::count_line`]) and
/// enqueues the tasks of the valid parts with `producer`, `batch` tasks of a queue at a time.
/// Without a producer it only counts (a dry run).
///
/// # Errors
///
/// A read or enqueue error.
pub async fn enqueue_records(
    reader: impl std::io::BufRead,
    producer: Option<&Producer>,
    batch: usize,
) -> Result<Enqueued, ProduceError> {
    let mut images = Batcher::<EmbedImage>::new(producer, batch);
    let mut texts = Batcher::<EmbedText>::new(producer, batch);
    let mut counts = Filtered::default();
    for (i, line) in reader.lines().enumerate() {
        let Some(v) = counts.count_line(i as u64 + 1, &line?) else {
            continue;
        };
        if let Ok(task) = v.image {
            images.push(task).await?;
        }
        if let Ok(task) = v.text {
            texts.push(task).await?;
        }
    }
    images.flush().await?;
    texts.flush().await?;
    Ok(Enqueued {
        counts,
        images: images.pushed,
        texts: texts.pushed,
        enqueue_time: images.time + texts.time,
    })
}

/// Buffers tasks of one type and enqueues them `batch` at a time.
struct Batcher<'a, T> {
    producer: Option<&'a Producer>,
    tasks: Vec<T>,
    batch: usize,
    pushed: u64,
    time: Duration,
}

impl<'a, T: Task> Batcher<'a, T> {
    fn new(producer: Option<&'a Producer>, batch: usize) -> Self {
        Self {
            producer,
            tasks: Vec::with_capacity(batch),
            batch,
            pushed: 0,
            time: Duration::ZERO,
        }
    }

    async fn push(&mut self, task: T) -> mq_core::Result<()> {
        self.pushed += 1;
        self.tasks.push(task);
        if self.tasks.len() >= self.batch {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> mq_core::Result<()> {
        let tasks = std::mem::take(&mut self.tasks);
        if let Some(p) = self.producer {
            if !tasks.is_empty() {
                let started = Instant::now();
                p.enqueue_many(tasks).await?;
                self.time += started.elapsed();
            }
        }
        Ok(())
    }
}
