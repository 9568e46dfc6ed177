//! The docs' "Contexts and start methods" examples: `set_start_method('spawn')`, then
//! `get_context('spawn')`, each child sending `'hello'` back to the parent.
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
//! Prints `hello` twice, then each start method and what it says.

use mp::StartMethod;

#[mp::task]
fn foo() -> String {
    "hello".to_string()
}

#[mp::main]
fn main() -> mp::Result<()> {
    mp::set_start_method(StartMethod::Spawn)?;
    let h = mp::spawn(foo, ())?;
    println!("{}", h.join()?);

    let ctx = mp::get_context(Some(StartMethod::Spawn))?;
    let p = ctx.process(foo, ());
    p.start()?;
    p.join()?;
    println!("{}", mp::spawn(foo, ())?.join()?);

    for method in mp::get_all_start_methods() {
        let ctx = mp::get_context(Some(method))?;
        let p = ctx.process(foo, ());
        p.start()?;
        p.join()?;
        println!("{method}: exitcode {:?}", p.exitcode());
    }
    Ok(())
}
