//! The docs' `multiprocessing.connection.wait()` example: four producer processes,
//! each writing to its own `Pipe(duplex=False)`; the parent waits on all readers.
//!
//! ```python
//! def foo(w):
//!     for i in range(10):
//!         w.send((i, current_process().name))
//!     w.close()
//!
//! if __name__ == '__main__':
//!     readers = []
//!     for i in range(4):
//!         r, w = Pipe(duplex=False)
//!         readers.append(r)
//!         p = Process(target=foo, args=(w,))
//!         p.start()
//!         w.close()
//!     while readers:
//!         for r in wait(readers):
//!             try:
//!                 msg = r.recv()
//!             except EOFError:
//!                 readers.remove(r)
//!             else:
//!                 print(msg)
//! ```
//!
//! Run: `cargo run --example wait_pipes` — prints 40 lines like `(0, 'Process-1')`.

use mp::connection::wait;
use mp::{pipe, Connection, Error, Process};

#[mp::task]
fn foo(w: Connection) {
    for i in 0..10i32 {
        w.send(&(i, mp::current_process().name())).unwrap();
    }
    w.close().unwrap();
}

#[mp::main]
fn main() -> mp::Result<()> {
    let mut readers = Vec::new();
    let mut procs = Vec::new();
    for _ in 0..4 {
        let (r, w) = pipe(false)?;
        readers.push(r);
        let p = Process::new(foo, (w,));
        // `w` was moved into the process: it is closed in the parent once started, so
        // when the child closes its end, wait() reports the reader ready (EOF).
        p.start()?;
        procs.push(p);
    }
    while !readers.is_empty() {
        let objs: Vec<&dyn mp::Waitable> = readers.iter().map(|r| r as _).collect();
        let ready = wait(&objs, None)?;
        // remove from the back so the indices of the others stay valid
        for i in ready.into_iter().rev() {
            match readers[i].recv::<(i32, String)>() {
                Ok((n, name)) => println!("({n}, '{name}')"),
                Err(Error::Eof) => {
                    readers.remove(i);
                }
                Err(e) => return Err(e),
            }
        }
    }
    for p in procs {
        p.join()?;
    }
    Ok(())
}
