//! [`Permits`]: a task's share of the in-flight limits (global and per queue), split off the
//! permits a fetcher took for a whole read.

use tokio::sync::OwnedSemaphorePermit;

/// Permits for `n` tasks: from the global semaphore and, if the queue has one, its own.
pub(crate) struct Permits {
    pub(super) global: OwnedSemaphorePermit,
    pub(super) queue: Option<OwnedSemaphorePermit>,
}

impl Permits {
    pub(super) fn len(&self) -> usize {
        self.global.num_permits()
    }

    /// Splits off the permits of one task.
    pub(super) fn take_one(&mut self) -> Option<Permits> {
        if self.len() <= 1 {
            return None;
        }
        Some(Permits {
            global: self.global.split(1)?,
            queue: match &mut self.queue {
                Some(q) => Some(q.split(1)?),
                None => None,
            },
        })
    }
}

impl Permits {
    /// Keeps one permit of each kind and releases the rest.
    pub(super) fn trim_to_one(mut self) -> Permits {
        let extra = self.len().saturating_sub(1);
        if extra > 0 {
            drop(self.global.split(extra));
            if let Some(q) = &mut self.queue {
                drop(q.split(extra));
            }
        }
        self
    }
}
