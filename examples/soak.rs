//! Soak run (issue 13, item 6): pools, queues, managers and locks for N minutes, with
//! random `SIGKILL`s of workers, checking every result that was acknowledged. Not part
//! of the test suite (it only has to compile there); run it as
//!
//! `nice -n 19 cargo run --release --example soak -- --minutes 10`
//!
//! (`--seconds N` for a short run). It prints the counts at the end and exits 1 if
//! anything was lost or wrong.
//!
//! What "acknowledged" means per workload:
//! - pool: a task's `Ok` result, which must be the right value; a task whose worker
//!   was killed fails with `WorkerDied` and is submitted again until it succeeds (a
//!   recovery); a task that never completes is lost.
//! - queue: each producer child puts `0..n` in order; a producer that was not killed
//!   must deliver all of them; a killed one a subset in order, without duplicates.
//! - manager: each child appends `(id, i)` for `i in 0..n` to a list proxy; a child
//!   that was not killed must have appended all of them, a killed one a prefix.
//! - locks: children increment a shared `Value` under its lock (nobody is killed while
//!   it may hold the lock, which would leave it held, as in CPython); the total must be
//!   exact.

use mp::Error;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(60);

#[mp::task]
fn work(x: u64, slow_ms: u64) -> (u32, u64) {
    if slow_ms > 0 {
        std::thread::sleep(Duration::from_millis(slow_ms));
    }
    (std::process::id(), x.wrapping_mul(x).wrapping_add(1))
}

#[mp::task]
fn produce(q: mp::Queue<(u32, u64)>, id: u32, n: u64) {
    for i in 0..n {
        q.put((id, i)).unwrap();
    }
}

#[mp::task]
fn append_all(l: mp::managers::ListProxy<(u32, u64)>, id: u32, n: u64) {
    for i in 0..n {
        l.append((id, i)).unwrap();
    }
}

#[mp::task]
fn add_locked(v: mp::Value<u64>, n: u64) {
    for _ in 0..n {
        *v.lock() += 1;
    }
}

#[derive(Default)]
struct Counts {
    tasks: u64,
    kills: u64,
    recoveries: u64,
    errors: BTreeMap<String, u64>,
    lost: u64,
    wrong: u64,
    rounds: u64,
}

impl Counts {
    fn error(&mut self, e: &Error) {
        let kind = format!("{e:?}");
        let kind = kind
            .split([' ', '(', '{'])
            .next()
            .unwrap_or("?")
            .to_string();
        *self.errors.entry(kind).or_default() += 1;
    }
}

/// A small xorshift generator (the soak needs variety, not quality).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

fn sigkill(pid: u32) {
    // SAFETY: plain kill(2).
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
}

/// A submitted pool task: its item, its delay, its result.
type Pending = (u64, u64, mp::AsyncResult<(u32, u64)>);

fn pool_round(ctx: &mp::Context, rng: &mut Rng, c: &mut Counts) -> mp::Result<()> {
    let pool = ctx.pool(Some(3))?;
    // the workers' pids, to kill them while they work
    let mut seen_pids: Vec<u32> = pool
        .starmap_chunked(work, (0..6).map(|x| (x, 5)), 1)?
        .into_iter()
        .map(|(pid, _)| pid)
        .collect();
    let n = 60;
    let mut pending: Vec<Pending> = (0..n)
        .map(|x| {
            let slow = if rng.below(4) == 0 { 30 } else { 0 };
            (x, slow, pool.apply_async(work, (x, slow)))
        })
        .collect();
    c.tasks += n;
    let mut attempts = 0;
    while !pending.is_empty() {
        attempts += 1;
        if attempts > 50 {
            c.lost += pending.len() as u64;
            break;
        }
        // a kill of a worker seen at work: always while the first batch runs
        if !seen_pids.is_empty() && (attempts == 1 || rng.below(3) == 0) {
            let victim = seen_pids[rng.below(seen_pids.len() as u64) as usize];
            sigkill(victim);
            c.kills += 1;
        }
        let mut again = Vec::new();
        for (x, slow, r) in pending {
            match r.get_timeout(T) {
                Ok((pid, v)) => {
                    if v != x.wrapping_mul(x).wrapping_add(1) {
                        c.wrong += 1;
                    }
                    if attempts > 1 {
                        c.recoveries += 1;
                    }
                    seen_pids.push(pid);
                }
                Err(Error::Timeout) => {
                    c.error(&Error::Timeout);
                    c.lost += 1;
                }
                Err(e) => {
                    c.error(&e);
                    again.push((x, slow, pool.apply_async(work, (x, slow))));
                }
            }
        }
        seen_pids.sort_unstable();
        seen_pids.dedup();
        pending = again;
    }
    pool.close()?;
    pool.join()
}

fn queue_round(ctx: &mp::Context, rng: &mut Rng, c: &mut Counts) -> mp::Result<()> {
    let q = ctx.queue::<(u32, u64)>()?;
    let n = 2_000;
    let producers: Vec<_> = (0..3u32)
        .map(|id| {
            let p = ctx.process(produce, (q.clone(), id, n));
            p.start().map(|()| p)
        })
        .collect::<mp::Result<_>>()?;
    c.tasks += 3 * n;
    let victim = rng.below(4) as usize; // 3 = nobody
    if let Some(p) = producers.get(victim) {
        std::thread::sleep(Duration::from_millis(rng.below(20)));
        p.kill()?;
        c.kills += 1;
    }
    let mut next = [0u64; 3];
    let mut got = [0u64; 3];
    loop {
        match q.get_timeout(Duration::from_millis(500)) {
            Ok((id, i)) => {
                let id = id as usize;
                if id >= 3 || i < next[id] || (i != next[id] && id != victim) {
                    c.wrong += 1; // out of order, a duplicate, or a gap
                } else {
                    next[id] = i + 1;
                    got[id] += 1;
                }
            }
            Err(Error::Empty) if producers.iter().all(|p| !p.is_alive()) => break,
            Err(Error::Empty) => {}
            Err(e) => c.error(&e),
        }
    }
    for (id, p) in producers.iter().enumerate() {
        p.join_timeout(T)?;
        if id != victim && got[id] != n {
            c.lost += n - got[id];
        }
    }
    if victim < 3 && got[victim] == n {
        c.recoveries += 1; // killed after it had flushed everything
    }
    Ok(())
}

fn manager_round(
    ctx: &mp::Context,
    m: &mp::managers::SyncManager,
    rng: &mut Rng,
    c: &mut Counts,
) -> mp::Result<()> {
    let l = m.list::<(u32, u64)>(Vec::new())?;
    let n = 200;
    let kids: Vec<_> = (0..3u32)
        .map(|id| {
            let p = ctx.process(append_all, (l.clone(), id, n));
            p.start().map(|()| p)
        })
        .collect::<mp::Result<_>>()?;
    c.tasks += 3 * n;
    let victim = rng.below(4) as usize;
    if let Some(p) = kids.get(victim) {
        std::thread::sleep(Duration::from_millis(rng.below(30)));
        p.kill()?;
        c.kills += 1;
    }
    for p in &kids {
        p.join_timeout(T)?;
    }
    let items = l.to_vec()?;
    for id in 0..3u32 {
        let mine: Vec<u64> = items
            .iter()
            .filter(|(i, _)| *i == id)
            .map(|(_, v)| *v)
            .collect();
        let prefix = mine.iter().enumerate().all(|(k, v)| *v == k as u64);
        if !prefix {
            c.wrong += 1;
        }
        if id as usize != victim && mine.len() as u64 != n {
            c.lost += n - mine.len() as u64;
        }
    }
    Ok(())
}

fn lock_round(ctx: &mp::Context, c: &mut Counts) -> mp::Result<()> {
    let v = ctx.value(0u64)?;
    let n = 2_000;
    let kids: Vec<_> = (0..3)
        .map(|_| {
            let p = ctx.process(add_locked, (v.clone(), n));
            p.start().map(|()| p)
        })
        .collect::<mp::Result<_>>()?;
    c.tasks += 3 * n;
    for p in &kids {
        p.join_timeout(T)?;
        if p.exitcode() != Some(0) {
            c.error(&Error::InvalidState(format!("exit {:?}", p.exitcode())));
        }
    }
    let total = v.get();
    if total != 3 * n {
        c.lost += (3 * n).saturating_sub(total);
        c.wrong += u64::from(total > 3 * n);
    }
    Ok(())
}

fn parse_duration() -> Duration {
    let args: Vec<String> = std::env::args().collect();
    let mut d = Duration::from_secs(60);
    for w in args.windows(2) {
        match (w[0].as_str(), w[1].parse::<u64>()) {
            ("--minutes", Ok(m)) => d = Duration::from_secs(60 * m),
            ("--seconds", Ok(s)) => d = Duration::from_secs(s),
            _ => {}
        }
    }
    d
}

#[mp::main]
fn main() {
    let run_for = parse_duration();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    let mut rng = Rng(seed);
    let mut c = Counts::default();
    let start = Instant::now();
    let methods = mp::get_all_start_methods();
    let managers: Vec<(mp::Context, mp::managers::SyncManager)> = methods
        .iter()
        .map(|m| {
            let ctx = mp::get_context(Some(*m)).expect("context");
            (ctx, ctx.manager().expect("manager"))
        })
        .collect();
    while start.elapsed() < run_for {
        for (ctx, m) in &managers {
            let results = [
                pool_round(ctx, &mut rng, &mut c),
                queue_round(ctx, &mut rng, &mut c),
                manager_round(ctx, m, &mut rng, &mut c),
                lock_round(ctx, &mut c),
            ];
            for r in results {
                if let Err(e) = r {
                    c.error(&e);
                    c.wrong += 1; // a round itself failed
                }
            }
            c.rounds += 1;
        }
    }
    println!("soak: {:?} with seed {seed}", start.elapsed());
    println!(
        "rounds {} tasks {} kills {} recoveries {} lost {} wrong {}",
        c.rounds, c.tasks, c.kills, c.recoveries, c.lost, c.wrong
    );
    println!("errors by kind: {:?}", c.errors);
    if c.lost > 0 || c.wrong > 0 {
        std::process::exit(1);
    }
}
