//! Managers (CPython's `multiprocessing.managers`): a server process holds objects and
//! other processes use them through proxies.
//!
//! [`Manager::new`] starts a [`SyncManager`], whose constructors make shared lists,
//! dicts, namespaces, locks, conditions, events, barriers, queues, values and arrays:
//!
//! ```
//! # mp::test_support!();
//! #[mp::task]
//! fn f(d: mp::managers::DictProxy<i32, String>, l: mp::managers::ListProxy<i32>) {
//!     d.insert(1, "1".into()).unwrap();
//!     l.reverse().unwrap();
//! }
//!
//! # fn main() -> mp::Result<()> {
//! let manager = mp::Manager::new()?;
//! let d = manager.dict::<i32, String>()?;
//! let l = manager.list((0..10).collect())?;
//! let p = mp::Process::new(f, (d.clone(), l.clone()));
//! p.start()?;
//! p.join()?;
//! assert_eq!(d.to_string(), "{1: '1'}");
//! assert_eq!(l.to_string(), "[9, 8, 7, 6, 5, 4, 3, 2, 1, 0]");
//! # Ok(()) }
//! ```
//!
//! Custom managers register their own types: `#[mp::shared]` on an impl block makes a
//! type shareable and generates its typed proxy, `#[derive(mp::Manager)]` with
//! `#[register(..)]` declares the manager (see [`macro@crate::shared`] and
//! [`macro@crate::Manager`]). The docs' `MathsClass`:
//!
//! ```
//! # mp::test_support!();
//! #[derive(Default)]
//! pub struct Maths;
//!
//! #[mp::shared]
//! impl Maths {
//!     pub fn add(&self, x: i64, y: i64) -> i64 { x + y }
//!     pub fn mul(&self, x: i64, y: i64) -> i64 { x * y }
//! }
//!
//! #[derive(mp::Manager)]
//! #[register("Maths", Maths::default)]
//! pub struct MyManager;
//!
//! # fn main() -> mp::Result<()> {
//! let m = MyManager::start()?;
//! let maths = m.maths()?;                 // a MathsProxy
//! assert_eq!(maths.add(4, 3)?, 7);
//! assert_eq!(maths.mul(7, 8)?, 56);
//! assert!(matches!(maths.call_method::<i64>("div", (1, 2)), Err(mp::Error::NotExposed { .. })));
//! # Ok(()) }
//! ```
//!
//! A manager at an `Address::Inet` with an authkey serves other hosts: the server runs
//! [`BaseManager::get_server`]`()?.serve_forever()` (or `start()`), clients declare the
//! typeids with `proxytype = ..` only and [`connect`](BaseManager::connect); a wrong
//! authkey is [`Error::Authentication`].
//!
//! # Design
//! - [`server`]: objects by id with reference counts, a thread per client connection,
//!   `(id, method, args)` requests, errors as replies (a panic in a referent's method
//!   is `Remote { kind: "Panic" }` and the server carries on).
//! - [`proxy`]: tokens, the per-thread connection cache, [`BaseProxy`].
//! - [`value`]: [`Value`], the self-describing values builtin containers hold, so the
//!   server sorts and compares without knowing the client's `T`.
//! - `builtins` / `sync`: the builtin referents and their typed proxies.
//!
//! Proxies carry their server's address and authkey (not a connection), so they are
//! `Clone + Send + Sync + Serialize + Deserialize` and work in any process that can
//! reach the server.

mod builtins;
mod containers;
pub mod proxy;
pub mod server;
mod sync;
mod transport;
pub mod value;

pub use containers::{
    ArrayProxy, DictProxy, Index, IteratorProxy, JoinableQueueProxy, ListProxy, MakeReferent,
    NamespaceProxy, QueueProxy, SharedQueue, ValueProxy,
};
pub use proxy::{BaseProxy, Encoding, Proxy, Token};
pub use server::{CreateFn, Fail, Out, Referent, Registry, Server};
pub use sync::{
    AnyLockProxy, BarrierProxy, ConditionProxy, EventProxy, LockProxy, ProxyGuard, RLockProxy,
    SemaphoreProxy,
};
pub use value::{from_value, to_value, Value};

use crate::connection::Address;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::process::Process;
use crate::spawn::TaskFn;
use proxy::{request, Request};
use serde::de::DeserializeOwned;
use serde::Serialize;
use server::{lock, InitSpec, ServeSpec};
use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The registry name of [`SyncManager`]'s server.
pub(crate) const SYNC_KIND: &str = "mp::managers::SyncManager";

/// A kind of manager: the typeids its server knows (CPython's `BaseManager` subclass with
/// its `register` calls). Implemented by [`SyncKind`] and by `#[derive(mp::Manager)]`.
pub trait ManagerType: Sized + 'static {
    /// What a started handle dereferences to: the generated per-typeid methods.
    type Ext: From<ManagerHandle>;
    /// The name the server process looks the registry up by.
    fn kind() -> &'static str;
    /// The registrations.
    fn registry() -> Registry;
}

/// The manager type of [`SyncManager`] (CPython's `SyncManager` class).
#[derive(Debug)]
pub struct SyncKind;

impl ManagerType for SyncKind {
    type Ext = ManagerHandle;
    fn kind() -> &'static str {
        SYNC_KIND
    }
    fn registry() -> Registry {
        builtins::sync_registry()
    }
}

enum Run {
    Unstarted,
    Started {
        process: Process,
        notify: crate::Connection,
        /// The private directory of an address the server picked itself, removed at
        /// shutdown even when the server could not (killed).
        own_dir: Option<std::path::PathBuf>,
        /// The process that started the server: only it shuts the server down (a
        /// forked child's copy of the handle leaves it alone, as CPython's `Finalize`
        /// ignores calls from another pid).
        owner: crate::popen_fork::MadeHere,
    },
    Connected,
    Stopped,
}

struct Core {
    address: Mutex<Option<Address>>,
    authkey: Vec<u8>,
    ctx: Context,
    run: Mutex<Run>,
}

impl Core {
    /// Stops the server this handle started (see [`BaseManager::shutdown`]).
    fn shutdown(&self) -> Result<()> {
        let mut run = lock(&self.run);
        let prev = std::mem::replace(&mut *run, Run::Stopped);
        drop(run);
        if let Run::Started {
            process,
            notify,
            own_dir,
            owner,
        } = prev
        {
            if !owner.here() {
                // a forked child's copy: the server is its parent's
                drop((process, notify));
                return Ok(());
            }
            let addr = lock(&self.address).as_ref().map(ToString::to_string);
            if let Some(addr) = &addr {
                // a server that already died cannot answer (and is not asked)
                if process.is_alive() {
                    let _ = request(addr, &self.authkey, &Request::Shutdown);
                }
                proxy::drop_thread_conn(addr);
            }
            drop(notify);
            process.join_timeout(STOP_TIMEOUT)?;
            if process.is_alive() {
                process.kill()?;
                process.join_timeout(STOP_TIMEOUT)?;
            }
            if let Some(dir) = own_dir {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
        Ok(())
    }
}

/// The managers this process started, shut down by an exit hook when the program ends
/// with one still running (never dropped: leaked, in a static, `std::process::exit`),
/// before the daemonic children are terminated, so each server removes its socket
/// (CPython's `Finalize(self, _finalize_manager, exitpriority=0)`). Per process: a
/// forked child does not shut its parent's managers down.
/// The exit hook's flag is per process too: a forked child starts without the hook
/// (its exit hooks are emptied at the fork), so its first manager installs one.
#[derive(Default)]
struct StartedHere {
    hook: std::sync::atomic::AtomicBool,
    list: Mutex<Vec<std::sync::Weak<Core>>>,
}
type Started = crate::popen_fork::ForkLocal<StartedHere>;
static STARTED: std::sync::LazyLock<Started> = std::sync::LazyLock::new(Started::new);

fn shut_down_at_exit(core: &Arc<Core>) {
    let here = STARTED.get();
    if !here.hook.swap(true, Ordering::AcqRel) {
        crate::util::register_exit_hook(1, || {
            let live: Vec<_> = std::mem::take(&mut *lock(&STARTED.get().list));
            for core in live.iter().filter_map(std::sync::Weak::upgrade) {
                let _ = core.shutdown();
            }
        });
    }
    let mut started = lock(&here.list);
    started.retain(|w| w.strong_count() > 0);
    started.push(Arc::downgrade(core));
}

/// A shared reference to a manager's server: what generated per-typeid methods (and
/// [`SyncManager`]'s constructors) create objects through.
#[derive(Clone)]
pub struct ManagerHandle {
    core: Arc<Core>,
}

impl fmt::Debug for ManagerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<ManagerHandle address={:?}>", lock(&self.core.address))
    }
}

impl ManagerHandle {
    fn addr(&self) -> Result<String> {
        if matches!(*lock(&self.core.run), Run::Unstarted | Run::Stopped) {
            return Err(Error::invalid(
                "the manager is not running: call start() or connect() first",
            ));
        }
        lock(&self.core.address)
            .as_ref()
            .map(ToString::to_string)
            .ok_or_else(|| Error::invalid("the manager has no address"))
    }

    fn create_token(&self, typeid: &str, args: Vec<u8>) -> Result<Token> {
        let bytes = request(
            &self.addr()?,
            &self.core.authkey,
            &Request::Create {
                typeid: typeid.to_string(),
                args: args.into(),
            },
        )?;
        crate::codec::decode(&bytes)
    }

    /// Creates an object of a builtin-style `typeid` from [`Value`] arguments and
    /// returns proxy `P` to it.
    pub fn create_dynamic<P: Proxy>(&self, typeid: &str, args: Vec<Value>) -> Result<P> {
        let token = self.create_token(typeid, crate::codec::encode(&args)?)?;
        Ok(P::from_base(BaseProxy::adopt(token, P::ENCODING)))
    }

    /// Creates an object of `typeid` (its registered callable called with `args`, a
    /// tuple) and returns proxy `P` to it (CPython's `manager.<typeid>(*args)`).
    pub fn create_with<P: Proxy>(&self, typeid: &str, args: impl Serialize + 'static) -> Result<P> {
        let bytes = match P::ENCODING {
            Encoding::Typed => crate::codec::encode(&args)?,
            Encoding::Dynamic => {
                let v = match value::value_of(args)? {
                    Value::Tuple(v) | Value::List(v) => v,
                    Value::None => Vec::new(),
                    one => vec![one],
                };
                crate::codec::encode(&v)?
            }
        };
        let token = self.create_token(typeid, bytes)?;
        Ok(P::from_base(BaseProxy::adopt(token, P::ENCODING)))
    }
}

/// A manager handle (CPython's `BaseManager`): unstarted from
/// [`new`](Self::new), running after [`start`](Self::start) (a server process) or
/// attached to a running server after [`connect`](Self::connect).
///
/// The handle that started the server stops it on [`shutdown`](Self::shutdown) or
/// drop; a handle from `connect()` leaves it running. It dereferences to the manager
/// type's generated methods (`m.maths()` …).
pub struct BaseManager<M: ManagerType> {
    handle: ManagerHandle,
    ext: M::Ext,
    _m: PhantomData<fn() -> M>,
}

/// Python's `SyncManager`: the manager [`Manager::new`] starts, with constructors for
/// shared containers and synchronization objects.
pub type SyncManager = BaseManager<SyncKind>;

/// Python's `multiprocessing.Manager()`: [`Manager::new`] starts a [`SyncManager`].
///
/// (`#[derive(mp::Manager)]` is the derive of the same name that declares a custom
/// manager.)
#[derive(Debug)]
pub struct Manager;

impl Manager {
    /// Python's `multiprocessing.Manager()`: a started [`SyncManager`] under the default
    /// start method.
    #[allow(clippy::new_ret_no_self)]
    pub fn new() -> Result<SyncManager> {
        let m = SyncManager::new(None, None);
        m.start()?;
        Ok(m)
    }
}

impl<M: ManagerType> std::ops::Deref for BaseManager<M> {
    type Target = M::Ext;
    fn deref(&self) -> &M::Ext {
        &self.ext
    }
}

impl<M: ManagerType> fmt::Debug for BaseManager<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match *lock(&self.handle.core.run) {
            Run::Unstarted => "initial",
            Run::Started { .. } => "started",
            Run::Connected => "connected",
            Run::Stopped => "shutdown",
        };
        let name = std::any::type_name::<M>()
            .rsplit("::")
            .next()
            .unwrap_or("Manager");
        let name = if name == "SyncKind" {
            "SyncManager"
        } else {
            name
        };
        write!(
            f,
            "<{name} state={state} address={:?}>",
            lock(&self.handle.core.address)
        )
    }
}

/// An address argument: an [`Address`], `"host:port"` or a path, `(host, port)`, or
/// `None` (a fresh Unix socket).
pub trait AddressArg {
    /// The address, if any.
    fn into_address(self) -> Option<Address>;
}

impl AddressArg for Option<Address> {
    fn into_address(self) -> Option<Address> {
        self
    }
}
impl AddressArg for Address {
    fn into_address(self) -> Option<Address> {
        Some(self)
    }
}
impl AddressArg for &Address {
    fn into_address(self) -> Option<Address> {
        Some(self.clone())
    }
}
impl AddressArg for &str {
    fn into_address(self) -> Option<Address> {
        self.parse().ok()
    }
}
impl AddressArg for String {
    fn into_address(self) -> Option<Address> {
        self.parse().ok()
    }
}
impl AddressArg for (&str, u16) {
    fn into_address(self) -> Option<Address> {
        Some(Address::Inet(self.0.to_string(), self.1))
    }
}
impl AddressArg for (String, u16) {
    fn into_address(self) -> Option<Address> {
        Some(Address::Inet(self.0, self.1))
    }
}

/// An authkey argument: bytes, a string, or `None` (the process's authkey, as in
/// CPython).
pub trait AuthkeyArg {
    /// The key, if any.
    fn into_authkey(self) -> Option<Vec<u8>>;
}
impl AuthkeyArg for Option<Vec<u8>> {
    fn into_authkey(self) -> Option<Vec<u8>> {
        self
    }
}
impl AuthkeyArg for Vec<u8> {
    fn into_authkey(self) -> Option<Vec<u8>> {
        Some(self)
    }
}
impl AuthkeyArg for &Vec<u8> {
    fn into_authkey(self) -> Option<Vec<u8>> {
        Some(self.clone())
    }
}
impl AuthkeyArg for &[u8] {
    fn into_authkey(self) -> Option<Vec<u8>> {
        Some(self.to_vec())
    }
}
impl<const N: usize> AuthkeyArg for &[u8; N] {
    fn into_authkey(self) -> Option<Vec<u8>> {
        Some(self.to_vec())
    }
}
impl AuthkeyArg for &str {
    fn into_authkey(self) -> Option<Vec<u8>> {
        Some(self.as_bytes().to_vec())
    }
}
impl AuthkeyArg for String {
    fn into_authkey(self) -> Option<Vec<u8>> {
        Some(self.into_bytes())
    }
}

static MANAGER_COUNT: AtomicUsize = AtomicUsize::new(0);

/// How long `start()` waits for the server process to report its address.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long `shutdown()` waits for the server process to exit before killing it.
const STOP_TIMEOUT: Duration = Duration::from_secs(2);

impl<M: ManagerType> BaseManager<M> {
    /// Python's `BaseManager(address, authkey)`: an unstarted handle. `address = None`
    /// picks a fresh Unix socket at start; `authkey = None` uses the process's authkey
    /// (which children inherit).
    pub fn new(address: impl AddressArg, authkey: impl AuthkeyArg) -> Self {
        Self::with_context(address, authkey, Context::default())
    }

    /// [`new`](Self::new) whose server process starts under `ctx`'s start method.
    pub fn with_context(address: impl AddressArg, authkey: impl AuthkeyArg, ctx: Context) -> Self {
        let handle = ManagerHandle {
            core: Arc::new(Core {
                address: Mutex::new(address.into_address()),
                authkey: authkey
                    .into_authkey()
                    .unwrap_or_else(crate::process::current_authkey),
                ctx,
                run: Mutex::new(Run::Unstarted),
            }),
        };
        BaseManager {
            ext: M::Ext::from(handle.clone()),
            handle,
            _m: PhantomData,
        }
    }

    /// The handle the generated methods use.
    pub fn handle(&self) -> &ManagerHandle {
        &self.handle
    }

    /// Python's `start()`: starts the server process and waits until it listens.
    /// An error if the handle was started, connected or shut down before.
    pub fn start(&self) -> Result<()> {
        self.start_inner(None)
    }

    /// Python's `start(initializer, initargs)`: the server process runs the registered
    /// task `init(args)` first.
    pub fn start_with<F, Args>(&self, init: F, args: Args) -> Result<()>
    where
        F: TaskFn<Args>,
        Args: Serialize + Send + 'static,
    {
        let _ = init;
        let task = crate::spawn::task_name_of::<F>()?.to_string();
        let (bytes, fds) = crate::codec::encode_with_fds(&args)?;
        self.start_inner(Some(InitSpec {
            task,
            args: bytes.into(),
            fds: fds.into_iter().map(Into::into).collect(),
        }))
    }

    fn start_inner(&self, init: Option<InitSpec>) -> Result<()> {
        let core = &self.handle.core;
        let mut run = lock(&core.run);
        if !matches!(*run, Run::Unstarted) {
            return Err(Error::invalid("the manager was already started or used"));
        }
        let (ours, theirs) = crate::connection::pipe(true)?;
        let spec = ServeSpec {
            kind: M::kind().to_string(),
            address: lock(&core.address).clone(),
            authkey: core.authkey.clone().into(),
            init,
            notify: theirs,
        };
        let n = MANAGER_COUNT.fetch_add(1, Ordering::Relaxed) + 1;
        let short = std::any::type_name::<M>()
            .rsplit("::")
            .next()
            .unwrap_or("Manager");
        let short = if short == "SyncKind" {
            "SyncManager"
        } else {
            short
        };
        let process = core
            .ctx
            .process(server::manager_server, (spec,))
            .with_daemon(true)
            .watching_its_parent_itself()
            .with_name(format!("{short}-{n}"));
        process.start()?;
        let reported = if ours.poll(Some(START_TIMEOUT))? {
            ours.recv::<std::result::Result<Address, String>>()
        } else {
            Err(Error::Timeout)
        };
        let address = match reported {
            Ok(Ok(a)) => a,
            Ok(Err(message)) => {
                let _ = process.join_timeout(STOP_TIMEOUT);
                return Err(Error::Remote {
                    kind: "ManagerStartFailed".into(),
                    message,
                    traceback: String::new(),
                });
            }
            Err(e) => {
                let _ = process.kill();
                let _ = process.join_timeout(STOP_TIMEOUT);
                return Err(e);
            }
        };
        let picked = lock(&core.address).is_none();
        let own_dir = match (&address, picked) {
            (Address::Unix(p), true) => p.parent().map(std::path::Path::to_path_buf),
            _ => None,
        };
        *lock(&core.address) = Some(address);
        *run = Run::Started {
            process,
            notify: ours,
            own_dir,
            owner: crate::popen_fork::MadeHere::new(),
        };
        shut_down_at_exit(core);
        Ok(())
    }

    /// Python's `connect()`: attaches this handle to a server that is already running
    /// at its address (a wrong authkey is [`Error::Authentication`]).
    pub fn connect(&self) -> Result<()> {
        let core = &self.handle.core;
        let mut run = lock(&core.run);
        if !matches!(*run, Run::Unstarted) {
            return Err(Error::invalid("the manager was already started or used"));
        }
        let addr = lock(&core.address)
            .clone()
            .ok_or_else(|| Error::invalid("connect() needs the server's address"))?;
        // a channel of its own, so that a failed handshake is not cached
        let mut chan = transport::connect(&addr, &core.authkey)?;
        chan.send(&Request::Dummy)?;
        match chan.recv::<proxy::Reply>()? {
            proxy::Reply::Ok(_) => {}
            proxy::Reply::Err {
                kind,
                message,
                traceback,
            } => return Err(proxy::remote_error(kind, message, traceback)),
        }
        *run = Run::Connected;
        Ok(())
    }

    /// Python's `get_server()`: a [`Server`] bound at this handle's address (a fresh
    /// Unix socket for `None`), to run in this process with
    /// [`Server::serve_forever`].
    pub fn get_server(&self) -> Result<Server> {
        let core = &self.handle.core;
        let address = lock(&core.address).clone();
        Server::bind(M::registry(), address, &core.authkey)
    }

    /// Python's `shutdown()`: stops the server this handle started (idempotent; a
    /// no-op for a handle that connected or never started). A client call blocked in
    /// the server at that moment returns an error.
    pub fn shutdown(&self) -> Result<()> {
        self.handle.core.shutdown()
    }

    /// Python's `address`: where the server listens.
    pub fn address(&self) -> Address {
        lock(&self.handle.core.address)
            .clone()
            .unwrap_or_else(|| Address::Unix(Default::default()))
    }

    /// The authkey clients of this manager use.
    pub fn authkey(&self) -> Vec<u8> {
        self.handle.core.authkey.clone()
    }

    /// The number of live objects in the server (CPython's `_number_of_objects()`).
    pub fn number_of_objects(&self) -> Result<usize> {
        let bytes = request(
            &self.handle.addr()?,
            &self.handle.core.authkey,
            &Request::NumObjects,
        )?;
        Ok(crate::codec::decode::<u64>(&bytes)? as usize)
    }

    /// `manager.<typeid>()` returning `T`'s full proxy: the registration's exposure is
    /// enforced by the server ([`Error::NotExposed`]).
    pub fn create<T: Shareable>(&self, typeid: &str) -> Result<T::Proxy> {
        self.handle.create_with(typeid, ())
    }

    /// `manager.<typeid>(*args)` returning proxy `P`.
    pub fn create_with<P: Proxy>(&self, typeid: &str, args: impl Serialize + 'static) -> Result<P> {
        self.handle.create_with(typeid, args)
    }
}

impl<M: ManagerType> Drop for BaseManager<M> {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

impl SyncManager {
    fn make<P: Proxy>(&self, typeid: &str, args: Vec<Value>) -> Result<P> {
        self.handle.create_dynamic(typeid, args)
    }

    /// `manager.list(items)`.
    pub fn list<T: Serialize + DeserializeOwned + 'static>(
        &self,
        items: Vec<T>,
    ) -> Result<ListProxy<T>> {
        self.make("list", vec![value::value_of(items)?])
    }
    /// `manager.dict()`.
    pub fn dict<K, V>(&self) -> Result<DictProxy<K, V>>
    where
        K: Serialize + DeserializeOwned + 'static,
        V: Serialize + DeserializeOwned + 'static,
    {
        self.make("dict", Vec::new())
    }
    /// `manager.dict(pairs)`.
    pub fn dict_from<K, V>(
        &self,
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Result<DictProxy<K, V>>
    where
        K: Serialize + DeserializeOwned + 'static,
        V: Serialize + DeserializeOwned + 'static,
    {
        let items = pairs
            .into_iter()
            .map(|(k, v)| Ok((value::value_of(k)?, value::value_of(v)?)))
            .collect::<Result<Vec<_>>>()?;
        self.make("dict", vec![Value::Dict(items)])
    }
    /// `manager.Namespace()`.
    pub fn namespace(&self) -> Result<NamespaceProxy> {
        self.make("Namespace", Vec::new())
    }
    /// `manager.Lock()`.
    pub fn lock(&self) -> Result<LockProxy> {
        self.make("Lock", Vec::new())
    }
    /// `manager.RLock()`.
    pub fn rlock(&self) -> Result<RLockProxy> {
        self.make("RLock", Vec::new())
    }
    /// `manager.Semaphore(n)`.
    pub fn semaphore(&self, value: u32) -> Result<SemaphoreProxy> {
        self.make("Semaphore", vec![Value::from(value)])
    }
    /// `manager.BoundedSemaphore(n)`.
    pub fn bounded_semaphore(&self, value: u32) -> Result<SemaphoreProxy> {
        self.make("BoundedSemaphore", vec![Value::from(value)])
    }
    /// `manager.Condition(lock)`: `None` makes its own `RLock`.
    pub fn condition(&self, lock: Option<AnyLockProxy>) -> Result<ConditionProxy> {
        let args = match lock {
            Some(l) => vec![value::to_value(l.base())?],
            None => Vec::new(),
        };
        self.make("Condition", args)
    }
    /// `manager.Event()`.
    pub fn event(&self) -> Result<EventProxy> {
        self.make("Event", Vec::new())
    }
    /// `manager.Barrier(parties)`.
    pub fn barrier(&self, parties: usize) -> Result<BarrierProxy> {
        self.make("Barrier", vec![Value::from(parties)])
    }
    /// `manager.Barrier(parties, timeout=t)`.
    pub fn barrier_timeout(&self, parties: usize, timeout: Duration) -> Result<BarrierProxy> {
        self.make(
            "Barrier",
            vec![Value::from(parties), Value::Float(timeout.as_secs_f64())],
        )
    }
    /// `manager.Queue(maxsize)` (0 = unbounded).
    pub fn queue<T: Serialize + DeserializeOwned + 'static>(
        &self,
        maxsize: usize,
    ) -> Result<QueueProxy<T>> {
        self.make("Queue", vec![Value::from(maxsize)])
    }
    /// `manager.JoinableQueue(maxsize)` (0 = unbounded).
    pub fn joinable_queue<T: Serialize + DeserializeOwned + 'static>(
        &self,
        maxsize: usize,
    ) -> Result<JoinableQueueProxy<T>> {
        self.make("JoinableQueue", vec![Value::from(maxsize)])
    }
    /// `manager.Value(typecode, v)` (the type is `T`).
    pub fn value<T: Serialize + DeserializeOwned + 'static>(&self, v: T) -> Result<ValueProxy<T>> {
        self.make("Value", vec![value::value_of(v)?])
    }
    /// `manager.Array(typecode, items)` (the type is `T`).
    pub fn array<T: Serialize + DeserializeOwned + 'static>(
        &self,
        items: Vec<T>,
    ) -> Result<ArrayProxy<T>> {
        self.make("Array", vec![value::value_of(items)?])
    }
}

// ---------------------------------------------------------------------------------
// registered Rust types

/// A type whose objects a manager can hold and call (implemented by `#[mp::shared]`
/// on its impl block, which also generates `Self::Proxy`).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be registered with a manager",
    label = "not a shared type",
    note = "put `#[mp::shared]` on `{Self}`'s impl block, or give the registration a `proxytype = ..`"
)]
pub trait Shareable: Send + 'static {
    /// The full typed proxy (one method per exposed method).
    type Proxy: Proxy;
    /// The methods exposed by default.
    const METHODS: &'static [&'static str];
    /// Runs `method` with encoded `args` (generated).
    #[doc(hidden)]
    fn __mp_dispatch(&mut self, method: &str, args: &[u8]) -> std::result::Result<Out, Fail>;
    /// A copy of the object, encoded (generated; an error when it is not serializable).
    #[doc(hidden)]
    fn __mp_get_value(&self) -> std::result::Result<Vec<u8>, Fail>;
    /// `repr()` of the object (generated: its `Debug` when it has one).
    #[doc(hidden)]
    fn __mp_repr(&self) -> String;
}

/// The server-side object of a [`Shareable`] type: calls are serialized by a mutex
/// (methods may take `&mut self`).
pub(crate) struct SharedObj<T>(Mutex<T>);

impl<T: Shareable> Referent for SharedObj<T> {
    fn call(&self, method: &str, args: &[u8]) -> std::result::Result<Out, Fail> {
        lock(&self.0).__mp_dispatch(method, args)
    }
    fn repr(&self) -> String {
        lock(&self.0).__mp_repr()
    }
    fn get_value(&self) -> std::result::Result<Vec<u8>, Fail> {
        lock(&self.0).__mp_get_value()
    }
    fn methods(&self) -> &'static [&'static str] {
        T::METHODS
    }
}

/// Boxes a shareable object as a referent.
pub fn shared_referent<T: Shareable>(t: T) -> Box<dyn Referent> {
    Box::new(SharedObj(Mutex::new(t)))
}

#[doc(hidden)]
pub mod root_exports {
    pub use super::Manager;
}
