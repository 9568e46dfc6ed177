//! The client side: tokens, the per-thread connections to servers, and [`BaseProxy`]
//! (CPython's `Token`, `BaseProxy` and its thread-local connection).
//!
//! Each client thread holds one authenticated connection per server address and reuses
//! it for every proxy it calls (CPython: one per proxy per thread); a connection that
//! failed is dropped and the next call connects again. After a `fork` the child drops
//! the connections it inherited instead of sharing them with its parent.
//!
//! Reference counting: a [`BaseProxy`] owns one reference on the server. Cloning it
//! shares that reference (an `Arc`); serializing it (as a `Process` argument, into a
//! container, through a queue) takes a new reference for the receiver first, so a
//! referent never goes away while a proxy to it is in flight; the last clone's drop
//! gives the reference back.

use super::transport::{self, Channel};
use super::value::{self, Value, PROXY_MAGIC};
use crate::codec::{self, ByteBuf};
use crate::connection::Address;
use crate::error::{Error, Result};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;
use std::sync::Arc;

/// Identifies a shared object: its typeid, the server's address and its id there
/// (CPython's `Token`).
#[derive(Clone, Serialize, Deserialize)]
pub struct Token {
    /// The registered type (`"list"`, `"dict"`, `"Maths"` …).
    pub typeid: String,
    /// The server's address (as [`Address`]'s `Display`).
    pub address: String,
    /// The object's id in the server.
    pub id: u64,
    /// The key proxies authenticate with (travels with the token, so that a proxy
    /// passed to a child or into another manager's container can still connect).
    pub(crate) authkey: ByteBuf,
    /// Server side: the reference this token holds on its object, when it sits inside
    /// a container of the same server.
    #[serde(skip)]
    pub(crate) guard: Option<Arc<super::server::Guard>>,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Token(typeid={:?}, address={:?}, id={:#x})",
            self.typeid, self.address, self.id
        )
    }
}

/// The proxy class name CPython shows for a typeid (`list` → `ListProxy`).
pub(crate) fn proxy_type_name(typeid: &str) -> String {
    match typeid {
        "list" => "ListProxy".into(),
        "dict" => "DictProxy".into(),
        "Namespace" => "NamespaceProxy".into(),
        "Lock" => "LockProxy".into(),
        "RLock" => "RLockProxy".into(),
        "Semaphore" | "BoundedSemaphore" => "SemaphoreProxy".into(),
        "Condition" => "ConditionProxy".into(),
        "Event" => "EventProxy".into(),
        "Barrier" => "BarrierProxy".into(),
        "Queue" => "QueueProxy".into(),
        "JoinableQueue" => "JoinableQueueProxy".into(),
        "Value" => "ValueProxy".into(),
        "Array" => "ArrayProxy".into(),
        "Iterator" => "IteratorProxy".into(),
        other => format!("AutoProxy[{other}]"),
    }
}

// ---------------------------------------------------------------------------------
// wire protocol

/// A request from a client to a server.
#[derive(Serialize, Deserialize, Debug)]
pub(crate) enum Request {
    /// Call `method` of object `id` with encoded `args`.
    Call {
        id: u64,
        method: String,
        args: ByteBuf,
    },
    /// Create an object of `typeid` from encoded constructor `args`; the reply is its
    /// token, holding one reference for the caller.
    Create {
        typeid: String,
        args: ByteBuf,
    },
    Incref(u64),
    Decref(u64),
    NumObjects,
    /// Stop the server (after replying).
    Shutdown,
    /// Does nothing (`connect()` checks the server answers).
    Dummy,
}

/// A server's answer.
#[derive(Serialize, Deserialize, Debug)]
pub(crate) enum Reply {
    Ok(ByteBuf),
    Err {
        kind: String,
        message: String,
        traceback: String,
    },
}

/// The special method that returns a copy of the referent (`#GETVALUE` in CPython).
pub(crate) const GETVALUE: &str = "#GETVALUE";

/// Turns a server's error reply into the [`Error`] the caller sees: the kinds that
/// have their own variant get it (`Empty`, `Full`, `Timeout`, `NotExposed` …);
/// Python-like failures stay [`Error::Remote`].
pub(crate) fn remote_error(kind: String, message: String, traceback: String) -> Error {
    match kind.as_str() {
        "NotExposed" => Error::NotExposed { method: message },
        "Empty" => Error::Empty,
        "Full" => Error::Full,
        "Timeout" => Error::Timeout,
        "BrokenBarrier" => Error::BrokenBarrier,
        "InvalidState" => Error::InvalidState(message),
        "Codec" => Error::Codec(message.into()),
        "NotRegistered" => Error::NotRegistered { name: message },
        _ => Error::Remote {
            kind,
            message,
            traceback,
        },
    }
}

struct CachedConn {
    address: String,
    pid: u32,
    chan: Rc<RefCell<Channel>>,
}

thread_local! {
    static CONNS: RefCell<Vec<CachedConn>> = const { RefCell::new(Vec::new()) };
}

/// How many servers a thread keeps a channel to.
const MAX_CACHED: usize = 16;

fn connect(address: &str, authkey: &[u8]) -> Result<Channel> {
    let addr: Address = address.parse()?;
    transport::connect(&addr, authkey)
}

/// This thread's channel to `address` (made on first use); `None` when thread-locals
/// are being torn down.
fn thread_conn(address: &str, authkey: &[u8]) -> Result<Option<Rc<RefCell<Channel>>>> {
    let pid = std::process::id();
    let found = CONNS.try_with(|c| {
        let mut c = c.borrow_mut();
        // channels inherited through fork belong to the parent
        c.retain(|e| e.pid == pid);
        c.iter()
            .find(|e| e.address == address)
            .map(|e| e.chan.clone())
    });
    match found {
        Ok(Some(chan)) => Ok(Some(chan)),
        Ok(None) => {
            let chan = Rc::new(RefCell::new(connect(address, authkey)?));
            let _ = CONNS.try_with(|c| {
                let mut c = c.borrow_mut();
                // channels to servers that went away are only noticed on use: keep the
                // cache bounded for threads that talk to many managers over time
                if c.len() >= MAX_CACHED {
                    c.remove(0);
                }
                c.push(CachedConn {
                    address: address.to_string(),
                    pid,
                    chan: chan.clone(),
                })
            });
            Ok(Some(chan))
        }
        Err(_) => Ok(None),
    }
}

fn forget_conn(address: &str) {
    let _ = CONNS.try_with(|c| c.borrow_mut().retain(|e| e.address != address));
}

/// Forgets this thread's connection to `address` (after its server stopped).
pub(crate) fn drop_thread_conn(address: &str) {
    forget_conn(address);
}

fn round_trip(chan: &mut Channel, req: &Request) -> Result<Reply> {
    chan.send(req)?;
    chan.recv::<Reply>()
}

/// Sends `req` to the server at `address` on this thread's connection and returns the
/// reply's payload.
pub(crate) fn request(address: &str, authkey: &[u8], req: &Request) -> Result<Vec<u8>> {
    let cached = thread_conn(address, authkey)?;
    let reply = match &cached {
        // a request made while this thread's channel is busy (a drop during a call)
        // goes on a channel of its own
        Some(chan) => match chan.try_borrow_mut() {
            Ok(mut c) => round_trip(&mut c, req),
            Err(_) => round_trip(&mut connect(address, authkey)?, req),
        },
        None => round_trip(&mut connect(address, authkey)?, req),
    };
    match reply {
        Ok(Reply::Ok(b)) => Ok(b.into_vec()),
        Ok(Reply::Err {
            kind,
            message,
            traceback,
        }) => Err(remote_error(kind, message, traceback)),
        Err(e) => {
            // the channel is in an unknown state: the next call connects afresh
            if cached.is_some() {
                forget_conn(address);
            }
            Err(match e {
                Error::Eof => Error::Remote {
                    kind: "ConnectionClosed".into(),
                    message: "the manager's server closed the connection (it was shut down \
                              or died)"
                        .into(),
                    traceback: String::new(),
                },
                other => other,
            })
        }
    }
}

// ---------------------------------------------------------------------------------
// BaseProxy

/// How a proxy's arguments and results travel: builtin containers exchange
/// [`Value`]s, registered Rust types their own typed encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// Arguments and results are converted to and from [`Value`]s.
    Dynamic,
    /// Arguments and results are encoded as their Rust types.
    Typed,
}

struct Core {
    token: Token,
    encoding: Encoding,
}

impl Drop for Core {
    fn drop(&mut self) {
        // the server may be gone already: nothing to give back then
        let _ = request(
            &self.token.address,
            &self.token.authkey,
            &Request::Decref(self.token.id),
        );
    }
}

/// The untyped proxy every typed proxy wraps (CPython's `BaseProxy`): a token, and
/// calls through this thread's connection to the token's server.
///
/// `Clone` shares the reference the proxy holds; dropping the last clone releases it.
/// Serializing takes a new reference for the receiver.
#[derive(Clone)]
pub struct BaseProxy {
    core: Arc<Core>,
}

impl BaseProxy {
    /// Wraps a token that carries one reference for this proxy.
    pub(crate) fn adopt(token: Token, encoding: Encoding) -> Self {
        BaseProxy {
            core: Arc::new(Core { token, encoding }),
        }
    }

    /// The token of the referent.
    pub fn token(&self) -> &Token {
        &self.core.token
    }

    /// How this proxy's calls are encoded.
    pub fn encoding(&self) -> Encoding {
        self.core.encoding
    }

    fn incref(&self) -> Result<()> {
        let t = &self.core.token;
        request(&t.address, &t.authkey, &Request::Incref(t.id)).map(drop)
    }

    /// Calls `method` with already-encoded arguments; the encoded result.
    pub fn call_raw(&self, method: &str, args: Vec<u8>) -> Result<Vec<u8>> {
        let t = &self.core.token;
        request(
            &t.address,
            &t.authkey,
            &Request::Call {
                id: t.id,
                method: method.to_string(),
                args: ByteBuf::from(args),
            },
        )
    }

    /// Calls a method of a builtin container with `Value` arguments.
    pub(crate) fn call_values(&self, method: &str, args: Vec<Value>) -> Result<Value> {
        let bytes = self.call_raw(method, codec::encode(&args)?)?;
        let mut v: Value = codec::decode(&bytes)?;
        super::server::adopt_reply(&mut v);
        Ok(v)
    }

    /// Python's `proxy._callmethod(name, args)`: calls `name` on the referent with the
    /// argument tuple `args` and decodes the result as `R`. A method the referent does
    /// not expose (or does not have) is [`Error::NotExposed`].
    pub fn call_method<R: DeserializeOwned + 'static>(
        &self,
        name: &str,
        args: impl Serialize,
    ) -> Result<R> {
        match self.core.encoding {
            Encoding::Typed => {
                let bytes = self.call_raw(name, codec::encode(&args)?)?;
                codec::decode(&bytes)
            }
            Encoding::Dynamic => {
                let args = match value::to_value(&args)? {
                    Value::Tuple(v) | Value::List(v) => v,
                    Value::None => Vec::new(),
                    one => vec![one],
                };
                value::from_value(self.call_values(name, args)?)
            }
        }
    }

    /// Python's `proxy._getvalue()`: a copy of the referent.
    pub fn get_value<T: DeserializeOwned + 'static>(&self) -> Result<T> {
        match self.core.encoding {
            Encoding::Typed => codec::decode(&self.call_raw(GETVALUE, Vec::new())?),
            Encoding::Dynamic => value::from_value(self.call_values(GETVALUE, Vec::new())?),
        }
    }

    /// Python's `repr()` of the referent, computed by the server.
    pub fn repr(&self) -> Result<String> {
        let bytes = self.call_raw("__repr__", Vec::new())?;
        codec::decode(&bytes)
    }

    /// Writes `<Name typeid 'x' at 0x…>`.
    pub(crate) fn fmt_debug(&self, name: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "<{name} typeid '{}' at {:#x}>",
            self.core.token.typeid,
            Arc::as_ptr(&self.core) as usize
        )
    }

    /// Writes the referent's repr (or the error that prevented it).
    pub(crate) fn fmt_display(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.repr() {
            Ok(s) => f.write_str(&s),
            Err(e) => write!(f, "<{} (error: {e})>", self.core.token.typeid),
        }
    }
}

impl fmt::Debug for BaseProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_debug("BaseProxy", f)
    }
}

impl fmt::Display for BaseProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_display(f)
    }
}

impl Serialize for BaseProxy {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.incref().map_err(|e| {
            serde::ser::Error::custom(format!("cannot take a reference for a proxy: {e}"))
        })?;
        s.serialize_newtype_struct(PROXY_MAGIC, &self.core.token)
    }
}

struct TokenVisitor;

impl<'de> serde::de::Visitor<'de> for TokenVisitor {
    type Value = Token;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a proxy")
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(
        self,
        d: D,
    ) -> std::result::Result<Token, D::Error> {
        Token::deserialize(d)
    }
}

impl BaseProxy {
    /// Deserializes a proxy whose calls use `encoding` (typed proxies know theirs).
    pub fn deserialize_as<'de, D: Deserializer<'de>>(
        d: D,
        encoding: Encoding,
    ) -> std::result::Result<Self, D::Error> {
        // From the wire (postcard) the sender took a reference for us. From a `Value`
        // (a container's item), the value's token keeps its own reference until it is
        // dropped, so the proxy takes another.
        let from_value = d.is_human_readable();
        let token = d.deserialize_newtype_struct(PROXY_MAGIC, TokenVisitor)?;
        let token = Token {
            guard: None,
            ..token
        };
        if from_value {
            request(&token.address, &token.authkey, &Request::Incref(token.id)).map_err(|e| {
                serde::de::Error::custom(format!("cannot take a reference for a proxy: {e}"))
            })?;
        }
        Ok(BaseProxy::adopt(token, encoding))
    }
}

impl<'de> Deserialize<'de> for BaseProxy {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        // builtin typeids talk in `Value`s
        BaseProxy::deserialize_as(d, Encoding::Dynamic).map(|mut p| {
            if !super::builtins::is_builtin(&p.core.token.typeid) {
                if let Some(core) = Arc::get_mut(&mut p.core) {
                    core.encoding = Encoding::Typed;
                }
            }
            p
        })
    }
}

/// A typed proxy: a wrapper around a [`BaseProxy`] (implemented by every proxy type of
/// this module and by the ones `#[mp::shared]` generates).
pub trait Proxy: Sized + Clone + Send + Sync + 'static {
    /// How calls through this proxy are encoded.
    const ENCODING: Encoding;
    /// Wraps a base proxy.
    fn from_base(base: BaseProxy) -> Self;
    /// The base proxy.
    fn base(&self) -> &BaseProxy;
}
