//! The docs' remote manager: a server with a queue at a TCP address and an authkey,
//! a client that puts, a client that gets; the clients know only the address, the key
//! and the typeid `get_queue`.
//!
//! ```python
//! # server
//! queue = queue.Queue()
//! class QueueManager(BaseManager): pass
//! QueueManager.register('get_queue', callable=lambda: queue)
//! m = QueueManager(address=('', 50000), authkey=b'abracadabra')
//! s = m.get_server()
//! s.serve_forever()
//!
//! # one client
//! class QueueManager(BaseManager): pass
//! QueueManager.register('get_queue')
//! m = QueueManager(address=('foo.bar.org', 50000), authkey=b'abracadabra')
//! m.connect()
//! queue = m.get_queue()
//! queue.put('hello')
//!
//! # another client
//! ...
//! queue.get()    # 'hello'
//! ```
//!
//! Here the three parties are three processes on 127.0.0.1 (the server on a free port).
//! With `server` as the first argument it is only the server, at 0.0.0.0:50000, and
//! `put HOST` / `get HOST` are the clients, as in the docs.

use mp::connection::{Address, Connection};
use mp::managers::{QueueProxy, SharedQueue};
use std::sync::LazyLock;
use std::time::Duration;

const AUTHKEY: &[u8] = b"abracadabra";

static QUEUE: LazyLock<SharedQueue> = LazyLock::new(|| SharedQueue::new(0));

fn get_queue() -> SharedQueue {
    QUEUE.clone()
}

/// The server's manager: `get_queue` returns its one queue.
#[derive(mp::Manager)]
#[register("get_queue", get_queue, proxytype = QueueProxy<String>)]
pub struct QueueManager;

/// The clients' manager: the typeid only.
#[derive(mp::Manager)]
#[register("get_queue", proxytype = QueueProxy<String>)]
pub struct QueueClient;

fn serve(address: (&str, u16), ready: Option<Connection>) -> mp::Result<()> {
    let m = QueueManager::new(address, AUTHKEY);
    let s = m.get_server()?;
    if let Some(ready) = ready {
        ready.send(&s.address())?;
    }
    s.serve_forever()
}

#[mp::task]
fn server(ready: Connection) {
    if let Err(e) = serve(("127.0.0.1", 0), Some(ready)) {
        eprintln!("server: {e}");
    }
}

#[mp::task]
fn putter(address: Address) {
    let m = QueueClient::new(address, AUTHKEY);
    m.connect().unwrap();
    m.get_queue().unwrap().put("hello".into()).unwrap();
}

fn client(address: Address) -> mp::Result<QueueProxy<String>> {
    let m = QueueClient::new(address, AUTHKEY);
    m.connect()?;
    m.get_queue()
}

#[mp::main]
fn main() -> mp::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["server"] => return serve(("0.0.0.0", 50000), None),
        ["put", host] => {
            return client(Address::Inet(host.to_string(), 50000))?.put("hello".into())
        }
        ["get", host] => {
            println!("{}", client(Address::Inet(host.to_string(), 50000))?.get()?);
            return Ok(());
        }
        _ => {}
    }
    let (ours, theirs) = mp::Pipe()?;
    let srv = mp::Process::new(server, (theirs,)).with_daemon(true);
    srv.start()?;
    if !ours.poll(Some(Duration::from_secs(30)))? {
        return Err(mp::Error::Timeout);
    }
    let address: Address = ours.recv()?;
    println!(
        "server listening with authkey {:?}",
        String::from_utf8_lossy(AUTHKEY)
    );

    let p = mp::Process::new(putter, (address.clone(),));
    p.start()?;
    p.join()?;
    println!("client 1 put 'hello'");

    let q = client(address.clone())?;
    println!("client 2 got {:?}", q.get_timeout(Duration::from_secs(30))?);

    let intruder = QueueClient::new(address, b"wrong key");
    match intruder.connect() {
        Err(mp::Error::Authentication(_)) => println!("a client with the wrong authkey is refused"),
        other => println!("unexpected: {other:?}"),
    }
    drop(q);
    srv.terminate()?;
    srv.join()?;
    Ok(())
}
