//! The first example of Python's multiprocessing docs:
//!
//! ```python
//! from multiprocessing import Process
//!
//! def f(name):
//!     print('hello', name)
//!
//! if __name__ == '__main__':
//!     p = Process(target=f, args=('bob',))
//!     p.start()
//!     p.join()
//! ```
//! Prints `hello bob`.

use mp::Process;

#[mp::task]
fn f(name: String) {
    println!("hello {name}");
}

#[mp::main]
fn main() -> mp::Result<()> {
    let p = Process::new(f, ("bob".to_string(),));
    p.start()?;
    p.join()?;
    Ok(())
}
