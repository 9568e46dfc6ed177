//! The docs' Listener/Client pair (Python's "Listeners and Clients"), run as two
//! processes: this program is the server and starts the client as a child process.
//!
//! ```python
//! # server
//! with Listener(('localhost', 6000), authkey=b'secret password') as listener:
//!     with listener.accept() as conn:
//!         print('connection accepted from', listener.last_accepted)
//!         conn.send([2.25, None, 'junk', float])
//!         conn.send_bytes(b'hello')
//!         conn.send_bytes(array('i', [42, 1729]))
//! # client
//! with Client(('localhost', 6000), authkey=b'secret password') as conn:
//!     print(conn.recv())                  # => [2.25, None, 'junk', float]
//!     print(conn.recv_bytes())            # => 'hello'
//!     arr = array('i', [0, 0, 0, 0, 0])
//!     print(conn.recv_bytes_into(arr))    # => 8
//!     print(arr)                          # => array('i', [42, 1729, 0, 0, 0])
//! ```
//!
//! Run: `cargo run --example listener_client` (port 6000 if free, else any port).
//! (`send`/`recv` use mp's codec; a Python peer would use `send_bytes`/`recv_bytes`
//! or `send_pickle`/`recv_pickle`, see tests/interop_python.rs.)

use mp::{Address, Client, Listener, Process};
use std::fmt;

const AUTHKEY: &[u8] = b"secret password";

/// The objects the server sends, printed like Python's `repr`.
#[derive(serde::Serialize, serde::Deserialize)]
enum Obj {
    Float(f64),
    None,
    Str(String),
    Type(String),
}

impl fmt::Debug for Obj {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Obj::Float(x) => write!(f, "{x:?}"),
            Obj::None => f.write_str("None"),
            Obj::Str(s) => write!(f, "'{s}'"),
            Obj::Type(t) => f.write_str(t),
        }
    }
}

fn py_bytes(b: &[u8]) -> String {
    let body: String = b
        .iter()
        .map(|&c| match c {
            b'\'' => "\\'".to_string(),
            b'\\' => "\\\\".to_string(),
            0x20..=0x7e => (c as char).to_string(),
            _ => format!("\\x{c:02x}"),
        })
        .collect();
    format!("b'{body}'")
}

fn show_addr(a: &Address) -> String {
    match a {
        Address::Inet(h, p) => format!("('{h}', {p})"),
        Address::Unix(p) => format!("'{}'", p.display()),
    }
}

#[mp::task]
fn client(address: Address) {
    if let Err(e) = run_client(address) {
        eprintln!("client failed: {e}");
        std::process::exit(1);
    }
}

fn run_client(address: Address) -> mp::Result<()> {
    let conn = Client::connect(&address, Some(AUTHKEY))?;
    println!("{:?}", conn.recv::<Vec<Obj>>()?); // => [2.25, None, 'junk', float]
    println!("{}", py_bytes(&conn.recv_bytes()?)); // => b'hello'
    let mut arr = [0i32; 5];
    let mut raw = [0u8; 20];
    let n = conn.recv_bytes_into(&mut raw)?;
    for (i, chunk) in raw.chunks_exact(4).enumerate() {
        arr[i] = i32::from_ne_bytes(chunk.try_into().unwrap());
    }
    println!("{n}"); // => 8
    println!("array('i', {arr:?})"); // => array('i', [42, 1729, 0, 0, 0])
    Ok(())
}

#[mp::main]
fn main() -> mp::Result<()> {
    let listener = Listener::bind(
        Some(Address::Inet("localhost".into(), 6000)),
        1,
        Some(AUTHKEY),
    )
    .or_else(|_| Listener::bind(Some(Address::Inet("localhost".into(), 0)), 1, Some(AUTHKEY)))?;
    let p = Process::new(client, (listener.address(),));
    p.start()?;
    {
        let conn = listener.accept()?;
        let from = listener
            .last_accepted()
            .map(|a| show_addr(&a))
            .unwrap_or_default();
        println!("connection accepted from {from}");
        conn.send(&vec![
            Obj::Float(2.25),
            Obj::None,
            Obj::Str("junk".into()),
            Obj::Type("float".into()),
        ])?;
        conn.send_bytes(b"hello")?;
        let arr: Vec<u8> = [42i32, 1729].iter().flat_map(|x| x.to_ne_bytes()).collect();
        conn.send_bytes(&arr)?;
    }
    p.join()?;
    listener.close()
}
