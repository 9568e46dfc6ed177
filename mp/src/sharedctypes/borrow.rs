//! One `&mut` per shared value at a time: the per-process borrow cells every handle
//! to a block shares.

use super::*;

// ---------------------------------------------------------------------------------
// Borrow tracking: at most one `&mut` to a block in this process

/// Bumped in a forked child (pthread_atfork): a borrow recorded before the fork belongs
/// to a thread the child does not have (or to the forking thread, whose frames below
/// the fork never run again in an mp child), so the child treats it as released.
pub(super) static FORK_GEN: AtomicU32 = AtomicU32::new(0);
pub(super) static ATFORK: std::sync::Once = std::sync::Once::new();

/// This thread's borrow token, never 0: the address of a thread-local (distinct for
/// every live thread; user-space addresses fit in 48 bits) with the fork generation
/// in the top 16 bits.
#[inline]
pub(super) fn thread_token() -> u64 {
    thread_local! {
        static ANCHOR: u8 = const { 0 };
    }
    // a thread being torn down (a value dropped by a TLS destructor) uses its kernel
    // thread id, which no live thread's anchor address can equal (those are far above)
    let id = ANCHOR
        .try_with(|a| a as *const u8 as u64)
        .unwrap_or_else(|_| u64::from(rustix::thread::gettid().as_raw_nonzero().get() as u32));
    (id & ((1 << 48) - 1)) | (u64::from(FORK_GEN.load(Ordering::Relaxed) & 0xffff) << 48)
}

/// The borrow state of one block in this process, shared by every handle to the block
/// (clones and handles received from other processes alike, found by the block's
/// identity): 0 when free, else the token of the thread using the memory (holding a
/// guard, or inside one `get`/`set`).
pub(super) struct BorrowCell {
    state: AtomicU64,
    id: (u64, u64, usize),
}

type Cells = HashMap<(u64, u64, usize), Weak<BorrowCell>>;
pub(super) static CELLS: Mutex<Option<Cells>> = Mutex::new(None);

/// Taken before [`CELLS`] by every user, and by the pthread_atfork prepare handler
/// across `fork()` (released in parent and child): so no thread holds `CELLS` at the
/// instant of a fork, and a forked child never finds it locked by a thread it does not
/// have (it would deadlock decoding its first value).
pub(super) static CELLS_GATE: AtomicBool = AtomicBool::new(false);

pub(super) fn gate_enter() {
    let mut spins = 0u32;
    while CELLS_GATE
        .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        spins += 1;
        if spins < 64 {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
}

pub(super) fn gate_exit() {
    CELLS_GATE.store(false, Ordering::Release);
}

extern "C" fn before_fork() {
    gate_enter();
}

extern "C" fn after_fork_in_parent() {
    gate_exit();
}

extern "C" fn after_fork_in_child() {
    FORK_GEN.fetch_add(1, Ordering::Relaxed);
    gate_exit();
}

/// Runs `f` on this process's registry of borrow cells.
pub(super) fn with_cells<R>(f: impl FnOnce(&mut Cells) -> R) -> R {
    ATFORK.call_once(|| {
        // SAFETY: registers plain `extern "C"` handlers that only touch atomics (and
        // spin, in the prepare handler, while another thread finishes a short critical
        // section of `with_cells`), as handlers around fork() must.
        unsafe {
            libc::pthread_atfork(
                Some(before_fork),
                Some(after_fork_in_parent),
                Some(after_fork_in_child),
            );
        }
    });
    gate_enter();
    struct Exit;
    impl Drop for Exit {
        fn drop(&mut self) {
            gate_exit();
        }
    }
    let _exit = Exit;
    let mut cells = lock_ignoring_poison(&CELLS);
    f(cells.get_or_insert_with(HashMap::new))
}

/// The borrow cell of `block`'s memory (the one every live handle to it shares).
pub(super) fn cell_for(block: &Block) -> Arc<BorrowCell> {
    let id = block.identity();
    with_cells(|map| {
        if let Some(c) = map.get(&id).and_then(Weak::upgrade) {
            return c;
        }
        let c = Arc::new(BorrowCell {
            state: AtomicU64::new(0),
            id,
        });
        map.insert(id, Arc::downgrade(&c));
        c
    })
}

impl Drop for BorrowCell {
    fn drop(&mut self) {
        with_cells(|map| {
            if map
                .get(&self.id)
                .is_some_and(|w| std::ptr::eq(w.as_ptr(), self))
            {
                map.remove(&self.id);
            }
        })
    }
}

/// The calling thread already uses the memory (it holds a guard of it).
pub(super) struct Reentered;

/// The memory is in use by this thread until dropped.
pub(super) struct Entered<'a>(&'a BorrowCell);

impl Drop for Entered<'_> {
    #[inline]
    fn drop(&mut self) {
        self.0.state.store(0, Ordering::Release);
    }
}

impl BorrowCell {
    /// Marks the memory as used by this thread. Another thread of this process using it
    /// (through another lock over the same block, or a raw handle) is waited for; the
    /// calling thread itself is refused.
    #[inline]
    pub(super) fn enter(&self) -> std::result::Result<Entered<'_>, Reentered> {
        let me = thread_token();
        match self
            .state
            .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
        {
            Ok(_) => Ok(Entered(self)),
            Err(cur) => self.enter_slow(me, cur),
        }
    }

    #[cold]
    pub(super) fn enter_slow(
        &self,
        me: u64,
        mut cur: u64,
    ) -> std::result::Result<Entered<'_>, Reentered> {
        let mut spins = 0u32;
        loop {
            if cur == me {
                return Err(Reentered);
            }
            // 0, or a borrow from before a fork (its thread is not in this process)
            let free = if cur == 0 || (cur >> 48) != (me >> 48) {
                cur
            } else {
                spins += 1;
                if spins < 64 {
                    std::hint::spin_loop();
                } else if spins < 128 {
                    std::thread::yield_now();
                } else {
                    std::thread::sleep(std::time::Duration::from_micros(100));
                }
                0
            };
            match self
                .state
                .compare_exchange(free, me, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return Ok(Entered(self)),
                Err(now) => cur = now,
            }
        }
    }
}

pub(super) fn borrowed_message<T>(what: &str) -> String {
    format!(
        "shared value of `{}` already borrowed: a guard from `lock()` of it is alive on \
         this thread, so `{what}` would alias its `&mut` (use the guard, or drop it first)",
        std::any::type_name::<T>()
    )
}

#[cold]
#[track_caller]
pub(super) fn borrowed_panic<T>(what: &str) -> ! {
    panic!("{}", borrowed_message::<T>(what))
}

#[cold]
#[track_caller]
pub(super) fn invalid_bits_panic<T>() -> ! {
    panic!(
        "shared memory holds bytes that are not a valid `{}` (written by another process)",
        std::any::type_name::<T>()
    )
}
