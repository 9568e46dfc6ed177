//! The docs' "Contexts and start methods" examples:
//!
//! ```python
//! def foo(q):
//!     q.put('hello')
//!
//! if __name__ == '__main__':
//!     mp.set_start_method('spawn')
//!     q = mp.Queue()
//!     p = mp.Process(target=foo, args=(q,))
//!     p.start()
//!     print(q.get())
//!     p.join()
//! ```
//! and the same with `ctx = mp.get_context('spawn')`. Prints `hello` twice, then each
//! start method with what its child said.

use mp::{Process, Queue, StartMethod};

#[mp::task]
fn foo(q: Queue<String>) {
    q.put("hello".to_string()).unwrap();
}

#[mp::main]
fn main() -> mp::Result<()> {
    mp::set_start_method(StartMethod::Spawn)?;
    let q = Queue::new()?;
    let p = Process::new(foo, (q.clone(),));
    p.start()?;
    println!("{}", q.get()?);
    p.join()?;

    let ctx = mp::get_context(Some(StartMethod::Spawn))?;
    let q = ctx.queue()?;
    let p = ctx.process(foo, (q.clone(),));
    p.start()?;
    println!("{}", q.get()?);
    p.join()?;

    for method in mp::get_all_start_methods() {
        let ctx = mp::get_context(Some(method))?;
        let q = ctx.queue()?;
        let p = ctx.process(foo, (q.clone(),));
        p.start()?;
        println!("{method}: {}", q.get()?);
        p.join()?;
    }
    Ok(())
}
