//! The docs' Queue example:
//!
//! ```python
//! def f(q):
//!     q.put([42, None, 'hello'])
//!
//! if __name__ == '__main__':
//!     q = Queue()
//!     p = Process(target=f, args=(q,))
//!     p.start()
//!     print(q.get())    # prints "[42, None, 'hello']"
//!     p.join()
//! ```

use mp::{Process, Queue};

#[mp::task]
fn f(q: Queue<(i32, Option<i32>, String)>) {
    q.put((42, None, "hello".to_string())).unwrap();
}

#[mp::main]
fn main() -> mp::Result<()> {
    let q = Queue::new()?;
    let p = Process::new(f, (q.clone(),));
    p.start()?;
    let (a, b, c) = q.get()?;
    println!(
        "[{a}, {}, '{c}']",
        b.map_or("None".to_string(), |b| b.to_string())
    );
    p.join()?;
    Ok(())
}
