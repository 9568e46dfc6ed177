//! The docs' `Pipe` example (Python's "Exchanging objects between processes: Pipes"):
//!
//! ```python
//! def f(conn):
//!     conn.send([42, None, 'hello'])
//!     conn.close()
//!
//! if __name__ == '__main__':
//!     parent_conn, child_conn = Pipe()
//!     p = Process(target=f, args=(child_conn,))
//!     p.start()
//!     print(parent_conn.recv())   # prints "[42, None, 'hello']"
//!     p.join()
//! ```
//!
//! Run: `cargo run --example pipe` — prints `[42, None, 'hello']`.

use mp::{Pipe, Process};
use std::fmt;

/// A Python object of the kinds the example sends, printed like Python's `repr`.
#[derive(serde::Serialize, serde::Deserialize)]
enum Obj {
    Int(i64),
    None,
    Str(String),
}

impl fmt::Debug for Obj {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Obj::Int(i) => write!(f, "{i}"),
            Obj::None => f.write_str("None"),
            Obj::Str(s) => write!(f, "'{s}'"),
        }
    }
}

#[mp::task]
fn f(conn: mp::Connection) {
    conn.send(&vec![Obj::Int(42), Obj::None, Obj::Str("hello".into())])
        .unwrap();
    conn.close().unwrap();
}

#[mp::main]
fn main() -> mp::Result<()> {
    let (parent_conn, child_conn) = Pipe()?;
    let p = Process::new(f, (child_conn,));
    p.start()?;
    println!("{:?}", parent_conn.recv::<Vec<Obj>>()?); // prints "[42, None, 'hello']"
    p.join()?;
    Ok(())
}
