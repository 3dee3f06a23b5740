//! The arbiter: orders the fetchers of a prioritized queue (one per level and partition), and
//! of the queues put in order with [`WorkerBuilder::queue_order`](super::WorkerBuilder::queue_order).
//! Plain queues have none: their fetcher never asks.
//!
//! Each fetcher has a [`Seat`] with a rank (0 first). Fetchers report their state after each
//! change (a read came back, entries dispatched, paused, failing) and ask before reading and
//! before taking permits:
//!
//! - **Strict**: a seat may read and start tasks only while every seat of a lower rank is
//!   *exhausted*: its last read came back empty and its buffer is empty (paused or failing
//!   counts as exhausted; a seat that has not read yet is not). So the first tasks a worker
//!   starts are of the highest level, and it never starts a lower level's task while it knows
//!   of a ready higher-level one (its buffered entries, or a read that returned entries).
//!   While a seat waits for a permit of its own queue's limit (`queue_concurrency`), the seats
//!   of that queue hold back only each other (its levels share that limit): the queues after
//!   it use the capacity it cannot, until it gets a permit and goes first again.
//! - **Weighted**: seats read freely; among the ranks not exhausted (entries buffered, or a
//!   read that may bring some) the one that served least, in tasks started divided by its
//!   weight (its virtual time), starts next: the others wait the round trip of its read
//!   rather than run ahead of it. A rank that comes back after being exhausted starts at the
//!   least virtual time of the others, so idling earns it no burst.
//!
//! A state change wakes waiting fetchers through a [`Notify`]; nothing polls.

use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// Orders the seats of one group of fetchers.
pub(crate) struct Arbiter {
    state: Mutex<State>,
    changed: Notify,
    /// `None`: strict; otherwise the weight of each rank.
    weights: Option<Vec<f64>>,
}

struct State {
    seats: Vec<SeatState>,
    /// Per queue: its seats waiting for a permit of its own limit.
    at_limit: Vec<usize>,
    /// Weighted: tasks started by each rank divided by its weight.
    vtime: Vec<f64>,
}

#[derive(Clone, Copy)]
struct SeatState {
    rank: usize,
    /// The seat's queue: seats of one queue share its limit.
    queue: usize,
    exhausted: bool,
    /// Waiting for a permit of its queue's own limit.
    at_limit: bool,
}

impl State {
    /// Whether seat `x`, not exhausted, holds back the seats of `queue` that rank after it:
    /// not while its own queue waits at its limit, unless that is `queue` too.
    fn holds_back(&self, x: &SeatState, queue: usize) -> bool {
        !(x.exhausted || (x.queue != queue && self.at_limit[x.queue] > 0))
    }
}

/// One fetcher's place in an [`Arbiter`]. Dropped (its fetcher ended), it counts as
/// exhausted: a fetcher that is gone holds back no other.
pub(crate) struct Seat {
    arbiter: Arc<Arbiter>,
    id: usize,
    rank: usize,
    queue: usize,
}

/// While alive, its seat waits for a permit of its queue's limit (see [`Seat::at_limit`]).
pub(crate) struct AtLimit<'a>(&'a Seat);

impl Drop for AtLimit<'_> {
    fn drop(&mut self) {
        self.0.set_at_limit(false);
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        self.report(true);
    }
}

impl Arbiter {
    /// A strict arbiter (`weights` is `None`) or a weighted one with one weight (at least 1)
    /// per rank.
    pub(crate) fn new(weights: Option<&[u32]>) -> Arc<Self> {
        let weights: Option<Vec<f64>> =
            weights.map(|w| w.iter().map(|&w| f64::from(w.max(1))).collect());
        let ranks = weights.as_ref().map_or(0, Vec::len);
        Arc::new(Arbiter {
            state: Mutex::new(State {
                seats: Vec::new(),
                at_limit: Vec::new(),
                vtime: vec![0.0; ranks],
            }),
            changed: Notify::new(),
            weights,
        })
    }

    /// A new seat of rank `rank` (0 goes first) of queue `queue` (an index: the seats of one
    /// queue share its limit): not exhausted.
    pub(crate) fn seat(self: &Arc<Self>, rank: usize, queue: usize) -> Seat {
        let mut s = lock(&self.state);
        s.seats.push(SeatState {
            rank,
            queue,
            exhausted: false,
            at_limit: false,
        });
        if s.at_limit.len() <= queue {
            s.at_limit.resize(queue + 1, 0);
        }
        if s.vtime.len() <= rank {
            s.vtime.resize(rank + 1, 0.0);
        }
        Seat {
            arbiter: self.clone(),
            id: s.seats.len() - 1,
            rank,
            queue,
        }
    }
}

impl Seat {
    /// The notification of a state change of the arbiter's seats.
    pub(crate) fn changed(&self) -> &Notify {
        &self.arbiter.changed
    }

    /// Records whether this seat is exhausted: its last read was empty and nothing is
    /// buffered, or it is paused or failing. Wakes the other seats if that changed.
    pub(crate) fn report(&self, exhausted: bool) {
        let a = &self.arbiter;
        let mut s = lock(&a.state);
        if s.seats[self.id].exhausted == exhausted {
            return;
        }
        if !exhausted && a.weights.is_some() {
            // Back after being exhausted: no credit for the idle time.
            let rank_busy = s.seats.iter().any(|x| x.rank == self.rank && !x.exhausted);
            let least = s
                .seats
                .iter()
                .filter(|x| !x.exhausted && x.rank != self.rank)
                .map(|x| s.vtime[x.rank])
                .fold(f64::INFINITY, f64::min);
            if !rank_busy && least.is_finite() && s.vtime[self.rank] < least {
                s.vtime[self.rank] = least;
            }
        }
        s.seats[self.id].exhausted = exhausted;
        drop(s);
        a.changed.notify_waiters();
    }

    /// Marks this seat as waiting for a permit of its queue's own limit until the guard is
    /// dropped: meanwhile its queue's seats hold back only each other.
    pub(crate) fn at_limit(&self) -> AtLimit<'_> {
        self.set_at_limit(true);
        AtLimit(self)
    }

    fn set_at_limit(&self, at_limit: bool) {
        let a = &self.arbiter;
        let mut s = lock(&a.state);
        if s.seats[self.id].at_limit == at_limit {
            return;
        }
        s.seats[self.id].at_limit = at_limit;
        if at_limit {
            s.at_limit[self.queue] += 1;
        } else {
            s.at_limit[self.queue] -= 1;
        }
        drop(s);
        a.changed.notify_waiters();
    }

    /// Whether this seat may send a read: strict, every lower rank is exhausted; weighted,
    /// always.
    pub(crate) fn may_read(&self) -> bool {
        match self.arbiter.weights {
            Some(_) => true,
            None => self.higher_exhausted(&lock(&self.arbiter.state)),
        }
    }

    /// Whether this seat may start tasks now: strict, every lower rank is exhausted;
    /// weighted, no rank that is not exhausted has served less (by its weight).
    pub(crate) fn may_start(&self) -> bool {
        let s = lock(&self.arbiter.state);
        match self.arbiter.weights {
            None => self.higher_exhausted(&s),
            Some(_) => {
                let mine = s.vtime[self.rank];
                s.seats
                    .iter()
                    .filter(|x| s.holds_back(x, self.queue) && x.rank != self.rank)
                    .all(|x| s.vtime[x.rank] >= mine)
            }
        }
    }

    /// Records `n` tasks started by this seat (weighted: its rank's virtual time advances).
    pub(crate) fn started(&self, n: usize) {
        let a = &self.arbiter;
        if let Some(w) = &a.weights {
            let mut s = lock(&a.state);
            let weight = w.get(self.rank).copied().unwrap_or(1.0);
            s.vtime[self.rank] += n as f64 / weight;
            drop(s);
            a.changed.notify_waiters();
        }
    }

    fn higher_exhausted(&self, s: &State) -> bool {
        s.seats
            .iter()
            .all(|x| x.rank >= self.rank || !s.holds_back(x, self.queue))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_waits_for_every_higher_rank() {
        let a = Arbiter::new(None);
        let (high, high2, low) = (a.seat(0, 0), a.seat(0, 0), a.seat(1, 0));
        assert!(high.may_read() && high.may_start() && high2.may_start());
        assert!(!low.may_read(), "unknown at start: not exhausted");
        high.report(true);
        assert!(!low.may_start(), "the second high seat has not read yet");
        high2.report(true);
        assert!(low.may_read() && low.may_start());
        high.report(false);
        assert!(!low.may_start());
    }

    #[test]
    fn weighted_serves_the_least_served_rank_without_idle_credit() {
        let a = Arbiter::new(Some(&[2, 1]));
        let (high, low) = (a.seat(0, 0), a.seat(1, 0));
        let mut starts = [0, 0];
        for _ in 0..300 {
            if high.may_start() {
                high.started(1);
                starts[0] += 1;
            } else {
                assert!(low.may_start());
                low.started(1);
                starts[1] += 1;
            }
        }
        assert_eq!(starts, [200, 100]);
        // Low idles while high runs 100 more; back, it gets no burst.
        low.report(true);
        high.started(100);
        low.report(false);
        assert!(low.may_start());
        low.started(1);
        assert!(high.may_start());
    }

    #[test]
    fn a_seat_at_its_queue_limit_holds_back_only_its_own_queue() {
        let a = Arbiter::new(None);
        // Queue 0 (levels high, low), then queue 1.
        let (high, low, next) = (a.seat(0, 0), a.seat(1, 0), a.seat(3, 1));
        assert!(!next.may_start());
        let waiting = high.at_limit();
        assert!(
            next.may_read() && next.may_start(),
            "queue 1 uses what queue 0 cannot"
        );
        assert!(
            !low.may_start(),
            "queue 0's low level shares the limit: still behind high"
        );
        // Low, held back by high (not exhausted), does not hold back queue 1 either: it waits
        // for the same limit.
        assert!(next.may_start());
        low.report(true);
        low.report(false);
        assert!(next.may_start());
        drop(waiting);
        assert!(!next.may_start(), "a permit came: queue 0 goes first again");
    }

    #[test]
    fn a_dropped_seat_holds_back_nothing() {
        let a = Arbiter::new(None);
        let (high, low) = (a.seat(0, 0), a.seat(1, 0));
        assert!(!low.may_start());
        drop(high);
        assert!(low.may_start());
    }
}
