//! A long `imap_unordered` with a progress bar, as Python users wrap `pool.imap` in tqdm:
//! indicatif's `ProgressIterator` over the result iterator. The bar draws on a terminal
//! (stderr); the total is printed either way.
//!
//! `cargo run --release --example pool_progress`

use indicatif::ProgressIterator;

#[mp::task]
fn collatz_steps(mut n: u64) -> u32 {
    let mut steps = 0;
    while n != 1 {
        n = if n.is_multiple_of(2) {
            n / 2
        } else {
            3 * n + 1
        };
        steps += 1;
    }
    steps
}

#[mp::main]
fn main() -> mp::Result<()> {
    let pool = mp::Pool::new(None)?;
    let n = 20_000u64;
    let mut longest = (0, 0);
    for (i, steps) in pool
        .imap_unordered_chunked(collatz_steps, 1..=n, 64)
        .progress_count(n)
        .enumerate()
    {
        let steps = steps?;
        if steps > longest.1 {
            longest = (i, steps);
        }
    }
    pool.close()?;
    pool.join()?;
    println!(
        "{n} numbers done; the longest Collatz chain has {} steps",
        longest.1
    );
    Ok(())
}
