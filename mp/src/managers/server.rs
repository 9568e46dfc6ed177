//! The server (CPython's `managers.Server`): objects by id with reference counts, one
//! thread per client connection answering `(id, method, args)` requests, and the
//! manager process's entry point.
//!
//! A request is decoded, checked against the object's exposed methods, and run under
//! `catch_unwind`: a panic in a referent's method becomes an error reply of kind
//! `"Panic"` and the server carries on. Blocking methods (a lock's `acquire`, a queue's
//! `get`) block only the thread of the connection that called them, and wake up in
//! bounded slices to notice a shutdown. A server process also exits when the process
//! that started it goes away (its notify connection reaches EOF).

use super::proxy::{Reply, Request, Token, GETVALUE};
use super::transport::{self, ManagerListener, Stream};
use super::value::Value;
use crate::codec::{self, ByteBuf};
use crate::connection::{Address, Connection};
use crate::error::{Error, Result};
use crate::reduction::SharedFd;
use crate::spawn::panic_message;
pub(crate) use crate::util::lock;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::HashMap;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// A failed call as the server reports it: a kind (`"IndexError"`, `"KeyError"`,
/// `"Panic"`, `"NotExposed"` …) and a message.
#[derive(Debug, Clone)]
pub struct Fail {
    /// Python's exception name, or an [`Error`] variant's name.
    pub kind: String,
    /// The message.
    pub message: String,
}

impl Fail {
    /// A failure of `kind`.
    pub fn new(kind: &str, message: impl Into<String>) -> Self {
        Fail {
            kind: kind.to_string(),
            message: message.into(),
        }
    }

    /// `NotExposed` for `method`.
    pub fn not_exposed(method: &str) -> Self {
        Fail::new("NotExposed", method)
    }
}

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        match e {
            Error::Remote { kind, message, .. } => Fail { kind, message },
            Error::NotExposed { method } => Fail::not_exposed(&method),
            Error::InvalidState(m) => Fail::new("InvalidState", m),
            Error::Codec(m) => Fail::new("Codec", m),
            other => Fail::new(other.variant_name(), other.to_string()),
        }
    }
}

/// What a method call produced: encoded data, or a new object to register and return
/// as a proxy (a method listed in `method_to_typeid`).
pub enum Out {
    /// The encoded result.
    Data(Vec<u8>),
    /// A new object of `typeid`; the caller gets a proxy to it.
    New {
        /// Its typeid.
        typeid: String,
        /// The object.
        referent: Box<dyn Referent>,
    },
}

impl std::fmt::Debug for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Out::Data(d) => write!(f, "Out::Data({} bytes)", d.len()),
            Out::New { typeid, .. } => write!(f, "Out::New({typeid:?})"),
        }
    }
}

/// An object a server holds: the builtin containers and sync primitives, and the types
/// `#[mp::shared]` makes shareable.
pub trait Referent: Send + Sync + 'static {
    /// Runs `method` with encoded `args`.
    fn call(&self, method: &str, args: &[u8]) -> std::result::Result<Out, Fail>;
    /// Python's `repr()` of the object.
    fn repr(&self) -> String;
    /// A copy of the object, encoded (`_getvalue()`).
    fn get_value(&self) -> std::result::Result<Vec<u8>, Fail>;
    /// The methods exposed when the registration does not say (the public ones).
    fn methods(&self) -> &'static [&'static str];
    /// The lock inside a lock object (for a `Condition` built on it).
    #[doc(hidden)]
    fn lock_core(&self) -> Option<Arc<super::sync::LockCore>> {
        None
    }
}

/// Makes a referent from encoded constructor arguments.
pub type CreateFn =
    Arc<dyn Fn(&[u8]) -> std::result::Result<Box<dyn Referent>, Fail> + Send + Sync>;

/// One registration: how to create the typeid's objects (servers only) and which
/// methods its proxies may call.
#[derive(Clone)]
pub struct TypeSpec {
    create: Option<CreateFn>,
    exposed: Option<Arc<[String]>>,
}

impl std::fmt::Debug for TypeSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypeSpec")
            .field("creatable", &self.create.is_some())
            .field("exposed", &self.exposed)
            .finish()
    }
}

/// The typeids a manager serves (CPython's `BaseManager._registry`).
#[derive(Clone, Default, Debug)]
pub struct Registry {
    types: HashMap<String, TypeSpec>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `typeid` (CPython's `register(typeid, callable, exposed=…)`): `create`
    /// is `None` for a client-side registration, `exposed = None` exposes the
    /// referent's public methods.
    pub fn register(
        &mut self,
        typeid: &str,
        create: Option<CreateFn>,
        exposed: Option<Vec<String>>,
    ) {
        self.types.insert(
            typeid.to_string(),
            TypeSpec {
                create,
                exposed: exposed.map(Into::into),
            },
        );
    }

    fn exposed(&self, typeid: &str) -> Option<Arc<[String]>> {
        self.types.get(typeid).and_then(|t| t.exposed.clone())
    }
}

struct Obj {
    typeid: String,
    referent: Arc<dyn Referent>,
    exposed: Option<Arc<[String]>>,
    refs: usize,
}

pub(crate) struct State {
    registry: Registry,
    objects: Mutex<HashMap<u64, Obj>>,
    next_id: AtomicU64,
    stopping: AtomicBool,
    address: String,
    authkey: Vec<u8>,
    listener: ManagerListener,
    /// A clone of each open client stream, to close them at shutdown.
    clients: Mutex<HashMap<u64, Stream>>,
    next_client: AtomicU64,
    /// A server process exits as soon as it has answered a shutdown request (its
    /// clients' streams close with it); a server thread stops serving instead.
    exit_on_shutdown: AtomicBool,
}

/// The reference a token inside a [`Value`] holds: in a container of its own server,
/// or in a value a client received (a `ListProxy<Value>` item that is a proxy).
pub(crate) enum Guard {
    /// Server side: given back to the table directly.
    Server { id: u64, state: Weak<State> },
    /// Client side: given back with a `Decref` request.
    Client {
        id: u64,
        address: String,
        authkey: Vec<u8>,
    },
}

impl Drop for Guard {
    fn drop(&mut self) {
        match self {
            Guard::Server { id, state } => {
                if let Some(s) = state.upgrade() {
                    s.decref(*id);
                }
            }
            Guard::Client {
                id,
                address,
                authkey,
            } => {
                // the server may be gone already: nothing to give back then
                let _ = super::proxy::request(address, authkey, &Request::Decref(*id));
            }
        }
    }
}

/// Client side, after decoding a reply: each token holds the reference the server
/// took for it until it is dropped or becomes a proxy (which takes its own).
pub(crate) fn adopt_reply(v: &mut Value) {
    v.for_each_token(&mut |t| {
        if t.guard.is_none() {
            t.guard = Some(Arc::new(Guard::Client {
                id: t.id,
                address: t.address.clone(),
                authkey: t.authkey.to_vec(),
            }));
        }
    });
}

thread_local! {
    /// The server whose connection this thread serves.
    static CURRENT: RefCell<Option<Arc<State>>> = const { RefCell::new(None) };
}

fn current() -> Option<Arc<State>> {
    CURRENT.try_with(|c| c.borrow().clone()).ok().flatten()
}

/// Whether the server this thread works for is shutting down (blocking methods poll it).
pub(crate) fn stopping() -> bool {
    current().is_some_and(|s| s.stopping.load(Ordering::Acquire))
}

/// How long a blocking method waits before it checks for a shutdown.
pub(crate) const SLICE: Duration = Duration::from_millis(50);

/// The error a blocking method returns when the server shuts down under it.
pub(crate) fn shut_down() -> Fail {
    Fail::new("InvalidState", "the manager is shutting down")
}

/// Server side, after decoding a value from a client: tokens of this server take over
/// the reference the client took for them.
pub(crate) fn import(v: &mut Value) {
    let Some(s) = current() else { return };
    v.for_each_token(&mut |t| {
        if t.guard.is_none() && t.address == s.address {
            t.guard = Some(Arc::new(Guard::Server {
                id: t.id,
                state: Arc::downgrade(&s),
            }));
        }
    });
}

/// Server side, before a value goes to a client: one new reference per token of this
/// server, which the client's proxy will own.
pub(crate) fn export(v: &mut Value) {
    let Some(s) = current() else { return };
    v.for_each_token(&mut |t| {
        if t.address == s.address {
            let _ = s.incref(t.id);
        }
    });
}

/// Looks up an object of this thread's server (a `Condition` finds its lock this way).
pub(crate) fn referent_of(token: &Token) -> Option<Arc<dyn Referent>> {
    let s = current()?;
    if token.address != s.address {
        return None;
    }
    let objects = lock(&s.objects);
    objects.get(&token.id).map(|o| o.referent.clone())
}

fn fail_reply(f: Fail, traceback: String) -> Reply {
    Reply::Err {
        kind: f.kind,
        message: f.message,
        traceback,
    }
}

impl State {
    fn incref(&self, id: u64) -> std::result::Result<(), Fail> {
        match lock(&self.objects).get_mut(&id) {
            Some(o) => {
                o.refs += 1;
                Ok(())
            }
            None => Err(Fail::new("KeyError", format!("no object with id {id:#x}"))),
        }
    }

    fn decref(&self, id: u64) {
        let gone = {
            let mut objects = lock(&self.objects);
            match objects.get_mut(&id) {
                Some(o) if o.refs > 1 => {
                    o.refs -= 1;
                    None
                }
                Some(_) => objects.remove(&id),
                None => None,
            }
        };
        // dropped outside the table lock: it may hold tokens that decref in turn
        drop(gone);
    }

    fn register(self: &Arc<Self>, typeid: String, referent: Box<dyn Referent>) -> Token {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let exposed = self.registry.exposed(&typeid);
        lock(&self.objects).insert(
            id,
            Obj {
                typeid: typeid.clone(),
                referent: Arc::from(referent),
                exposed,
                refs: 1,
            },
        );
        Token {
            typeid,
            address: self.address.clone(),
            id,
            authkey: ByteBuf::from(self.authkey.clone()),
            guard: None,
        }
    }

    fn encode_token(&self, t: &Token) -> Reply {
        match codec::encode(t) {
            Ok(b) => Reply::Ok(ByteBuf::from(b)),
            Err(e) => fail_reply(e.into(), String::new()),
        }
    }

    fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
        self.listener.wake();
        // wake the connection threads blocked reading: their clients see the end
        for s in lock(&self.clients).values() {
            s.shutdown();
        }
    }

    fn handle(self: &Arc<Self>, req: Request) -> Reply {
        match req {
            Request::Call { id, method, args } => self.call(id, &method, &args),
            Request::Create { typeid, args } => {
                let Some(spec) = self.registry.types.get(&typeid) else {
                    return fail_reply(
                        Fail::new("KeyError", format!("unknown typeid {typeid:?}")),
                        String::new(),
                    );
                };
                let Some(create) = spec.create.clone() else {
                    return fail_reply(
                        Fail::new(
                            "InvalidState",
                            format!("typeid {typeid:?} has no callable on this server"),
                        ),
                        String::new(),
                    );
                };
                match panic::catch_unwind(AssertUnwindSafe(|| create(&args))) {
                    Ok(Ok(r)) => {
                        let token = self.register(typeid, r);
                        self.encode_token(&token)
                    }
                    Ok(Err(f)) => fail_reply(f, format!("creating {typeid}")),
                    Err(p) => fail_reply(
                        Fail::new("Panic", panic_message(&*p)),
                        format!("creating {typeid}"),
                    ),
                }
            }
            Request::Incref(id) => match self.incref(id) {
                Ok(()) => Reply::Ok(ByteBuf::new()),
                Err(f) => fail_reply(f, String::new()),
            },
            Request::Decref(id) => {
                self.decref(id);
                Reply::Ok(ByteBuf::new())
            }
            Request::NumObjects => {
                let n = lock(&self.objects).len() as u64;
                Reply::Ok(ByteBuf::from(codec::encode(&n).unwrap_or_default()))
            }
            Request::Shutdown | Request::Dummy => Reply::Ok(ByteBuf::new()),
        }
    }

    fn call(self: &Arc<Self>, id: u64, method: &str, args: &[u8]) -> Reply {
        let found = lock(&self.objects)
            .get(&id)
            .map(|o| (o.referent.clone(), o.exposed.clone(), o.typeid.clone()));
        let Some((referent, exposed, typeid)) = found else {
            return fail_reply(
                Fail::new("KeyError", format!("no object with id {id:#x}")),
                String::new(),
            );
        };
        let where_ = format!("in {typeid}.{method}");
        let run = || -> std::result::Result<Out, Fail> {
            match method {
                GETVALUE => return referent.get_value().map(Out::Data),
                "__repr__" | "__str__" => {
                    return codec::encode(&referent.repr())
                        .map(Out::Data)
                        .map_err(Fail::from)
                }
                _ => {}
            }
            let allowed = match &exposed {
                Some(list) => list.iter().any(|m| m == method),
                None => referent.methods().contains(&method),
            };
            if !allowed {
                return Err(Fail::not_exposed(method));
            }
            referent.call(method, args)
        };
        match panic::catch_unwind(AssertUnwindSafe(run)) {
            Ok(Ok(Out::Data(b))) => Reply::Ok(ByteBuf::from(b)),
            Ok(Ok(Out::New { typeid, referent })) => {
                let token = self.register(typeid, referent);
                self.encode_token(&token)
            }
            Ok(Err(f)) => fail_reply(f, where_),
            Err(p) => fail_reply(Fail::new("Panic", panic_message(&*p)), where_),
        }
    }

    fn serve_client(self: Arc<Self>, stream: Stream) {
        let mut chan = match transport::authenticate(stream, &self.authkey) {
            Ok(c) => c,
            Err(e) => {
                log::info!("manager: a client failed to connect: {e}");
                return;
            }
        };
        let key = self.next_client.fetch_add(1, Ordering::Relaxed);
        match chan.stream_clone() {
            Ok(s) => {
                lock(&self.clients).insert(key, s);
            }
            Err(_) => return,
        }
        if self.stopping.load(Ordering::Acquire) {
            lock(&self.clients).remove(&key);
            return;
        }
        let _ = CURRENT.try_with(|c| *c.borrow_mut() = Some(self.clone()));
        loop {
            let req = match chan.recv::<Request>() {
                Ok(r) => r,
                Err(Error::Codec(m)) => {
                    // the frame was consumed whole: say so and go on
                    let r = fail_reply(Fail::new("Codec", m), String::new());
                    if chan.send(&r).is_err() {
                        break;
                    }
                    continue;
                }
                Err(_) => break,
            };
            let shutdown = matches!(req, Request::Shutdown);
            let reply = self.handle(req);
            let sent = chan.send(&reply);
            if shutdown {
                self.stop();
                if self.exit_on_shutdown.load(Ordering::Acquire) {
                    self.listener.remove_files();
                    crate::util::run_exit_handlers();
                    // not process::exit: a forked server must not run the C atexit
                    // handlers and destructors it inherited from its owner
                    crate::popen_fork::exit_now(0);
                }
            }
            if sent.is_err() {
                break;
            }
        }
        lock(&self.clients).remove(&key);
        let _ = CURRENT.try_with(|c| c.borrow_mut().take());
    }
}

/// A manager's server (CPython's `managers.Server`), serving in the thread that calls
/// [`serve_forever`](Self::serve_forever); made by
/// [`BaseManager::get_server`](super::BaseManager::get_server).
#[derive(Clone)]
pub struct Server {
    state: Arc<State>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<Server address={}>", self.state.address)
    }
}

impl Server {
    /// Binds a listener at `address` (`None`: a fresh Unix socket) for `registry`.
    pub(crate) fn bind(
        registry: Registry,
        address: Option<Address>,
        authkey: &[u8],
    ) -> Result<Server> {
        let listener = ManagerListener::bind(address)?;
        let address = listener.address().to_string();
        Ok(Server {
            state: Arc::new(State {
                registry,
                objects: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(1),
                stopping: AtomicBool::new(false),
                address,
                authkey: authkey.to_vec(),
                listener,
                clients: Mutex::new(HashMap::new()),
                next_client: AtomicU64::new(0),
                exit_on_shutdown: AtomicBool::new(false),
            }),
        })
    }

    /// The address clients connect to (the real port when bound to port 0).
    pub fn address(&self) -> Address {
        self.state.listener.address()
    }

    /// Python's `server.serve_forever()`: accepts clients (each served by its own
    /// thread) until a client asks for a shutdown or [`shutdown`](Self::shutdown) is
    /// called. A client that fails the authkey handshake is turned away and the server
    /// goes on.
    pub fn serve_forever(&self) -> Result<()> {
        loop {
            if self.state.stopping.load(Ordering::Acquire) {
                return Ok(());
            }
            match self.state.listener.accept() {
                Ok(stream) => {
                    // the handshake runs on the connection's own thread, so a slow or
                    // hostile client cannot hold up the others
                    let state = self.state.clone();
                    let spawned = std::thread::Builder::new()
                        .name("mp-manager-conn".into())
                        .spawn(move || state.serve_client(stream));
                    if let Err(e) = spawned {
                        log::warn!("manager: cannot start a connection thread: {e}");
                    }
                }
                Err(_) if self.state.stopping.load(Ordering::Acquire) => return Ok(()),
                Err(e) => {
                    log::info!("manager: accept failed: {e}");
                    // e.g. out of descriptors: do not spin
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
    }

    /// Stops [`serve_forever`](Self::serve_forever) (from any thread of this process).
    pub fn shutdown(&self) {
        self.state.stop();
    }

    /// How many objects the server holds.
    pub fn number_of_objects(&self) -> usize {
        lock(&self.state.objects).len()
    }
}

// ---------------------------------------------------------------------------------
// the server process

/// A registered task run in the server process before it serves
/// (`start_with(init, args)`).
#[derive(Serialize, Deserialize, Debug)]
pub(crate) struct InitSpec {
    pub task: String,
    pub args: ByteBuf,
    pub fds: Vec<SharedFd>,
}

/// What the server process is started with.
#[derive(Serialize, Deserialize, Debug)]
pub(crate) struct ServeSpec {
    /// Which manager type's registry to serve (see [`registry_for`]).
    pub kind: String,
    pub address: Option<Address>,
    pub authkey: ByteBuf,
    pub init: Option<InitSpec>,
    /// The address goes back on it; its EOF means the parent is gone.
    pub notify: Connection,
}

/// The registry of the manager type named `kind`.
fn registry_for(kind: &str) -> Result<Registry> {
    if kind == super::SYNC_KIND {
        return Ok(super::builtins::sync_registry());
    }
    for m in crate::__private::MANAGERS {
        if (m.name)() == kind {
            return Ok((m.registry)());
        }
    }
    Err(Error::NotRegistered {
        name: kind.to_string(),
    })
}

/// The server process: binds, reports its address, serves until shut down or until
/// the process that started it goes away.
#[crate::task]
pub(crate) fn manager_server(spec: ServeSpec) {
    // a panic in a referent's method goes back to its caller as `Remote { kind: "Panic" }`;
    // here it is one line, not a backtrace per call
    let default_hook = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        if std::thread::current().name() == Some("mp-manager-conn") {
            eprintln!("[manager] a method panicked (the caller gets the error): {info}");
        } else {
            default_hook(info);
        }
    }));
    let notify = spec.notify;
    let started = (|| -> Result<Server> {
        if let Some(init) = spec.init {
            let entry = crate::spawn::task_by_name(&init.task)?;
            let fds = init.fds.into_iter().map(SharedFd::into_owned).collect();
            match panic::catch_unwind(AssertUnwindSafe(|| (entry.call)(&init.args, fds))) {
                Ok(r) => {
                    r?;
                }
                Err(p) => {
                    return Err(Error::invalid(format!(
                        "the manager's initializer panicked: {}",
                        panic_message(&*p)
                    )))
                }
            }
        }
        let registry = registry_for(&spec.kind)?;
        Server::bind(registry, spec.address, &spec.authkey)
    })();
    let server = match started {
        Ok(s) => s,
        Err(e) => {
            let _ = notify.send(&Err::<Address, String>(e.to_string()));
            return;
        }
    };
    if notify
        .send(&Ok::<Address, String>(server.address()))
        .is_err()
    {
        return;
    }
    server.state.exit_on_shutdown.store(true, Ordering::Release);
    let watcher = server.clone();
    // the owner is gone when the notify connection ends (EOF, or anything arriving) or
    // when its pidfd says it ended: under fork this process holds a copy of the
    // owner's end of the connection too (and so may any sibling forked later), so the
    // EOF alone never comes when the owner is killed
    let parent = match crate::process::parent_pidfd(&crate::process::current_meta()) {
        crate::process::ParentFd::Gone => {
            // nobody is left to remove the socket
            server.state.listener.remove_files();
            return;
        }
        crate::process::ParentFd::Unwatchable => None,
        crate::process::ParentFd::Open(fd, _) => Some(fd),
    };
    let _ = crate::process::without_signals(|| {
        std::thread::Builder::new()
            .name("mp-manager-parent".into())
            .spawn(move || {
                let mut fds = vec![notify.fileno().unwrap_or(-1)];
                fds.extend(parent.as_ref().map(std::os::fd::AsRawFd::as_raw_fd));
                // EOF or data on the connection, or the owner's pidfd readable; an
                // error (a descriptor gone bad) proves nothing about the owner
                if crate::reduction::poll_fds(&fds, None).is_ok() {
                    watcher.shutdown();
                }
            })
    });
    let _ = server.serve_forever();
    // connection threads may still hold the state: remove the socket now
    server.state.listener.remove_files();
}
