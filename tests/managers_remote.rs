//! Remote managers (CPython's `_TestRemoteManager` and the docs' three-party example):
//! a server at `Address::Inet` with an authkey serves a queue to clients that know only
//! the typeid; a wrong authkey is refused and the server keeps serving.

mod common;

use common::{for_each_method, join_ok};
use mp::connection::{Address, Connection};
use mp::managers::{QueueProxy, SharedQueue};
use mp::Error;
use std::sync::LazyLock;
use std::time::Duration;

const AUTHKEY: &[u8] = b"abracadabra";
const T: Duration = Duration::from_secs(10);

static QUEUE: LazyLock<SharedQueue> = LazyLock::new(|| SharedQueue::new(0));

fn get_queue() -> SharedQueue {
    QUEUE.clone()
}

static MP_QUEUE: LazyLock<mp::Queue<String>> = LazyLock::new(|| mp::Queue::new().expect("a queue"));

fn get_mp_queue() -> mp::Queue<String> {
    MP_QUEUE.clone()
}

/// A callable may also return a shared-memory `mp::Queue`.
#[derive(mp::Manager)]
#[register("get_queue", get_mp_queue, proxytype = QueueProxy<String>)]
pub struct MpQueueManager;

/// The server side: the callable returns the one queue of the server process.
#[derive(mp::Manager)]
#[register("get_queue", get_queue, proxytype = QueueProxy<String>)]
pub struct QueueManager;

/// The client side: the typeid and its proxy type only.
#[derive(mp::Manager)]
#[register("get_queue", proxytype = QueueProxy<String>)]
pub struct QueueClient;

/// The docs' server program: `m.get_server().serve_forever()` at 127.0.0.1.
#[mp::task]
fn server(ready: Connection) {
    let m = QueueManager::new(("127.0.0.1", 0), AUTHKEY);
    let s = m.get_server().unwrap();
    ready.send(&s.address()).unwrap();
    s.serve_forever().unwrap();
}

/// The docs' putting client: connects knowing only the address, the key and the typeid.
#[mp::task]
fn putter(address: Address, item: String) {
    let m = QueueClient::new(address, AUTHKEY);
    m.connect().unwrap();
    let q = m.get_queue().unwrap();
    q.put(item).unwrap();
}

#[mp::task]
fn put_through_proxy(q: QueueProxy<String>) {
    q.put("through a proxy".into()).unwrap();
}

#[test]
fn three_party_queue_over_tcp() {
    for_each_method(|ctx| {
        let (ours, theirs) = mp::Pipe().unwrap();
        let srv = ctx.process(server, (theirs,)).with_daemon(true);
        srv.start().unwrap();
        assert!(
            ours.poll(Some(T)).unwrap(),
            "the server did not report its address"
        );
        let address: Address = ours.recv().unwrap();
        assert!(matches!(&address, Address::Inet(h, p) if h == "127.0.0.1" && *p != 0));

        let p = ctx.process(putter, (address.clone(), "hello".to_string()));
        p.start().unwrap();
        join_ok(&p);

        // the getter: this process
        let m = QueueClient::new(address.clone(), AUTHKEY);
        m.connect().unwrap();
        let q = m.get_queue().unwrap();
        assert_eq!(q.get_timeout(T).unwrap(), "hello");

        // a wrong key is refused, and the server keeps serving
        let bad = QueueClient::new(address.clone(), b"wrong key");
        assert!(matches!(bad.connect(), Err(Error::Authentication(_))));
        let p = ctx.process(putter, (address.clone(), "again".to_string()));
        p.start().unwrap();
        join_ok(&p);
        assert_eq!(q.get_timeout(T).unwrap(), "again");

        // a proxy from a remote manager passed to a child still reaches the server
        let p = ctx.process(put_through_proxy, (q.clone(),));
        p.start().unwrap();
        join_ok(&p);
        assert_eq!(q.get_timeout(T).unwrap(), "through a proxy");
        assert!(matches!(q.try_get(), Err(Error::Empty)));

        drop(q);
        drop(m);
        srv.kill().unwrap();
        srv.join_timeout(T).unwrap();
    });
}

#[test]
fn remote_manager_started_here() {
    // `start()` at an Inet address: the server process serves remote clients
    let m = QueueManager::new(("127.0.0.1", 0), AUTHKEY);
    m.start().unwrap();
    let address = m.address();
    let p = mp::Process::new(putter, (address.clone(), "from a client".to_string()));
    p.start().unwrap();
    join_ok(&p);
    let q = m.get_queue().unwrap();
    assert_eq!(q.get_timeout(T).unwrap(), "from a client");
    let c = QueueClient::new(address, b"not the key");
    assert!(matches!(c.connect(), Err(Error::Authentication(_))));
    assert!(q.empty().unwrap());
    m.shutdown().unwrap();
}

/// The server of the namespace test: enters the network namespace at `ns` (this child
/// only), binds at `host` and serves.
#[mp::task]
fn server_in_netns(ns: String, host: String, ready: Connection) {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(&ns).unwrap();
    // SAFETY: setns on a descriptor we own; it moves this thread to that namespace.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
    let m = QueueManager::new((host.as_str(), 0), AUTHKEY);
    let s = m.get_server().unwrap();
    ready.send(&s.address()).unwrap();
    s.serve_forever().unwrap();
}

/// Runs `ip args…`; whether it succeeded.
fn ip(args: &[&str]) -> bool {
    std::process::Command::new("ip")
        .args(args)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// A network namespace joined to this one by a veth pair; removed on drop.
struct Netns {
    name: String,
    host_if: String,
}

impl Drop for Netns {
    fn drop(&mut self) {
        ip(&["link", "del", &self.host_if]);
        ip(&["netns", "del", &self.name]);
    }
}

#[test]
fn callable_returning_an_mp_queue() {
    let m = MpQueueManager::new(("127.0.0.1", 0), AUTHKEY);
    m.start().unwrap();
    let p = mp::Process::new(putter, (m.address(), "via mp::Queue".to_string()));
    p.start().unwrap();
    join_ok(&p);
    let q = m.get_queue().unwrap();
    assert_eq!(q.get_timeout(T).unwrap(), "via mp::Queue");
    assert!(matches!(
        q.get_timeout(Duration::from_millis(50)),
        Err(Error::Empty)
    ));
    q.put("back".into()).unwrap();
    assert_eq!(q.qsize().unwrap(), 1);
    assert_eq!(q.get().unwrap(), "back");
}

/// "Another host" for real: the server runs in a second network namespace, reached over
/// a veth pair (its own interfaces, addresses and loopback). Needs `ip netns` and the
/// privileges for it; skipped with the reason otherwise.
#[test]
fn across_network_namespaces() {
    let pid = std::process::id();
    let name = format!("mpmgr{pid}");
    if !ip(&["netns", "add", &name]) {
        eprintln!("skipped: `ip netns add` failed here (no iproute2 or no CAP_SYS_ADMIN)");
        return;
    }
    let ns = Netns {
        name: name.clone(),
        host_if: format!("{name}a"),
    };
    let peer = format!("{name}b");
    let net = pid % 250 + 1;
    let (here, there) = (format!("10.214.{net}.1"), format!("10.214.{net}.2"));
    let setup = ip(&[
        "link",
        "add",
        &ns.host_if,
        "type",
        "veth",
        "peer",
        "name",
        &peer,
    ]) && ip(&["link", "set", &peer, "netns", &name])
        && ip(&["addr", "add", &format!("{here}/24"), "dev", &ns.host_if])
        && ip(&["link", "set", &ns.host_if, "up"])
        && ip(&[
            "netns",
            "exec",
            &name,
            "ip",
            "addr",
            "add",
            &format!("{there}/24"),
            "dev",
            &peer,
        ])
        && ip(&["netns", "exec", &name, "ip", "link", "set", &peer, "up"]);
    if !setup {
        eprintln!("skipped: cannot set up a veth pair into the namespace here");
        return;
    }
    let (ours, theirs) = mp::Pipe().unwrap();
    let srv = mp::Process::new(
        server_in_netns,
        (format!("/var/run/netns/{name}"), there.clone(), theirs),
    )
    .with_daemon(true);
    srv.start().unwrap();
    assert!(
        ours.poll(Some(T)).unwrap(),
        "the server did not report its address"
    );
    let address: Address = ours.recv().unwrap();
    assert!(
        matches!(&address, Address::Inet(h, _) if *h == there),
        "{address:?}"
    );

    let p = mp::Process::new(putter, (address.clone(), "across hosts".to_string()));
    p.start().unwrap();
    join_ok(&p);
    let m = QueueClient::new(address.clone(), AUTHKEY);
    m.connect().unwrap();
    let q = m.get_queue().unwrap();
    assert_eq!(q.get_timeout(T).unwrap(), "across hosts");
    assert!(matches!(
        QueueClient::new(address, b"wrong").connect(),
        Err(Error::Authentication(_))
    ));
    assert!(q.empty().unwrap());
    drop(q);
    drop(m);
    srv.kill().unwrap();
    srv.join_timeout(T).unwrap();
    drop(ns);
}
