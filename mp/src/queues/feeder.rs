//! The per-process side of a queue: the buffer of items waiting for room in the ring
//! and the feeder thread that moves them in (CPython's `Queue._buffer`,
//! `_start_thread` and `_feed`).
//!
//! An unbounded queue's `put` never blocks: when the ring is full the item waits here,
//! and a feeder thread moves buffered items into the ring, in order, as consumers make
//! room. At exit the feeder is joined (the buffer flushed) unless
//! `cancel_join_thread` was called, as in CPython.

use super::ring::{Encoded, Pushed, Ring};
use super::Core;
use crate::error::{Error, Result};
use crate::synchronize::futex::{self, Deadline};
use crate::util::lock;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering::*};
use std::sync::{Arc, Condvar, Mutex};

/// What the first buffered item waits for.
enum Stuck {
    /// Room in the ring for this many bytes.
    Room(usize),
    /// The side channel to take its descriptors.
    Channel,
}

/// What this process alone holds (CPython's `_buffer`, `_thread`, `_closed` …).
#[derive(Default)]
pub(super) struct Local {
    pub pending: Mutex<VecDeque<Encoded>>,
    /// Items buffered or in the feeder's hands: while 0, puts go straight to the ring
    /// without touching `pending`'s lock.
    pub pending_len: std::sync::atomic::AtomicUsize,
    /// Signalled when `pending` drains (join_thread waits on it).
    pub drained: Condvar,
    pub feeder: Mutex<Option<std::thread::JoinHandle<()>>>,
    pub closed: AtomicBool,
    pub cancel_join: AtomicBool,
    pub hook_installed: AtomicBool,
    /// A feeder thread is running; changed only under `pending`'s lock, so an item
    /// buffered while the feeder decides to stop is never stranded.
    pub feeder_active: AtomicBool,
    /// Why the feeder had to drop an item (reported once by the next put/close/join).
    pub failed: Mutex<Option<Error>>,
    /// Whether `failed` may hold an error: every put looks, and takes `failed`'s lock
    /// only when it is set.
    pub has_failed: AtomicBool,
}

impl Core {
    /// An unbounded put: straight into the ring, or into the feeder's buffer if the ring
    /// is full (or older items are still buffered, to keep this producer's order).
    ///
    /// `dl` bounds the wait for the ring lock (`try_put`: none; `put_timeout`: its
    /// timeout): an item that could not get the lock in time is buffered, so even an
    /// unbounded put honours its deadline.
    pub(super) fn put_nowait_unbounded(self: &Arc<Self>, e: Encoded, dl: Deadline) -> Result<()> {
        // A full ring usually means a consumer one step behind: spin a few microseconds
        // for room (it frees some with every get) before handing the item to the
        // feeder thread, whose wake-ups would slow both sides to a crawl.
        let mut spun = false;
        while self.local().pending_len.load(Acquire) == 0 {
            match self.ring.push_once(&e, dl)? {
                Pushed::Done => {
                    e.recycle();
                    return Ok(());
                }
                Pushed::LockTimedOut | Pushed::ChannelBusy => break,
                Pushed::NoRoom => {}
            }
            let size = e.ring_size();
            if spun || !futex::spin_until(Deadline::Never, || self.ring.has_room(size)) {
                break;
            }
            spun = true;
        }
        let mut pending = lock(&self.local().pending);
        pending.push_back(e);
        self.local().pending_len.fetch_add(1, AcqRel);
        drop(pending);
        // move what fits now (keeps this producer's order: the buffer drains from the
        // front); the feeder thread takes over only while the ring stays full
        let _ = self.drain_pending();
        if self.local().pending_len.load(Acquire) > 0 {
            self.start_feeder();
        }
        Ok(())
    }

    /// Moves buffered items into the ring, as many as fit, under one lock acquisition.
    /// Returns what the first item still buffered waits for, if any.
    ///
    /// An item is only ever dropped for a permanent failure (a transient one, a full
    /// side channel or too many descriptors in flight, keeps it buffered until it
    /// passes); the failure is then kept for the next `put`, `close` or `join_thread`
    /// of this process to return ([`take_failure`](Self::take_failure)).
    fn drain_pending(&self) -> Option<Stuck> {
        let local = self.local();
        let mut pending = lock(&local.pending);
        pending.front()?;
        if !self.ring.lock(Deadline::Never) {
            return pending.front().map(|e| Stuck::Room(e.ring_size()));
        }
        let mut moved = 0u32;
        let mut stuck = None;
        while let Some(front) = pending.front() {
            match self.ring.push_locked(front) {
                Ok(Pushed::Done) => moved += 1,
                Ok(Pushed::NoRoom | Pushed::LockTimedOut) => {
                    stuck = Some(Stuck::Room(front.ring_size()));
                    break;
                }
                Ok(Pushed::ChannelBusy) => {
                    stuck = Some(Stuck::Channel);
                    break;
                }
                Err(err) => {
                    log::warn!("a queue item could not be sent and was dropped: {err}");
                    let mut failed = lock(&local.failed);
                    failed.get_or_insert(err);
                    local.has_failed.store(true, Release);
                }
            }
            if let Some(e) = pending.pop_front() {
                e.recycle();
            }
            local.pending_len.fetch_sub(1, AcqRel);
        }
        self.ring.unlock();
        if moved > 0 {
            Ring::bump(&self.ring.h().put, super::ring::WAKE_ALL_GETTERS);
        }
        stuck
    }

    /// The error an item this process had buffered was dropped with, once.
    pub(super) fn take_failure(&self) -> Result<()> {
        if !self.local().has_failed.load(Acquire) {
            return Ok(());
        }
        let mut failed = lock(&self.local().failed);
        self.local().has_failed.store(false, Release);
        match failed.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn start_feeder(self: &Arc<Self>) {
        let pending = lock(&self.local().pending);
        if pending.is_empty() || self.local().feeder_active.load(Acquire) {
            return;
        }
        self.local().feeder_active.store(true, Release);
        drop(pending);
        let mut feeder = lock(&self.local().feeder);
        if let Some(old) = feeder.take() {
            let _ = old.join(); // it has stopped (or is stopping): it cleared feeder_active
        }
        let core = self.clone();
        *feeder = Some(std::thread::spawn(move || core.feed()));
        drop(feeder);
        if !self.local().hook_installed.swap(true, AcqRel) {
            let weak = Arc::downgrade(self);
            crate::util::register_exit_hook(0, move || {
                if let Some(core) = weak.upgrade() {
                    core.finalize();
                }
            });
        }
    }

    /// The feeder thread: moves buffered items into the ring, in order, in batches.
    fn feed(&self) {
        loop {
            if self.local().cancel_join.load(Acquire) && self.local().closed.load(Acquire) {
                let mut pending = lock(&self.local().pending);
                self.local().pending_len.fetch_sub(pending.len(), AcqRel);
                pending.clear(); // cancelled: drop what is left
            }
            let Some(stuck) = self.drain_pending() else {
                let pending = lock(&self.local().pending);
                if !pending.is_empty() {
                    continue; // a producer buffered another item meanwhile
                }
                self.local().feeder_active.store(false, Release);
                self.local().drained.notify_all();
                return;
            };
            // asleep until a consumer makes the room, or drains the side channel
            match stuck {
                Stuck::Room(size) => {
                    let _ = self.ring.wait_room(size, Deadline::Never);
                }
                Stuck::Channel => {
                    let _ = self.ring.wait_channel(Deadline::Never);
                }
            }
        }
    }

    /// Waits until this process's buffered items are in the ring.
    pub(super) fn join_feeder(&self) {
        let mut pending = lock(&self.local().pending);
        while !pending.is_empty() {
            pending = self
                .local()
                .drained
                .wait(pending)
                .unwrap_or_else(|p| p.into_inner());
        }
        drop(pending);
        if let Some(h) = lock(&self.local().feeder).take() {
            let _ = h.join();
        }
    }

    /// At exit: flush the buffer unless cancelled (CPython's `_finalize_join`).
    pub(super) fn finalize(&self) {
        if self.local().cancel_join.load(Acquire) {
            let mut pending = lock(&self.local().pending);
            self.local().pending_len.fetch_sub(pending.len(), AcqRel);
            pending.clear();
            return;
        }
        self.join_feeder();
    }
}
