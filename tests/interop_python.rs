//! Interoperability with a real CPython peer: `multiprocessing.connection`'s Client and
//! Listener against ours, with the 3.11 handshake (HMAC-MD5) and the 3.13 one
//! (`{sha256}`), correct and wrong keys; with the `pickle` feature, `send_pickle` /
//! `recv_pickle` against Python's `send`/`recv`. The Python side is tests/py/peer.py,
//! run as a subprocess (killed if it does not finish within the timeout).
mp::test_support!();

use mp::{Address, Client, Error, Listener};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::Duration;

const T: Duration = Duration::from_secs(30);
/// `None`: the default python3 (3.11 here); `Some(v)`: that pyenv version.
const PY313: &str = "3.13.0";

/// The Python peers to test against: the default python3 always; pyenv's 3.13 (the
/// `{sha256}` handshake) where this machine has it, as every machine of this project's
/// kind does. Without it the run says so loudly rather than failing a fresh machine that
/// has only python3.
fn pythons() -> Vec<Option<&'static str>> {
    let has_313 = Command::new("python3")
        .env("PYENV_VERSION", PY313)
        .args(["-c", "import sys; print(sys.version_info[:2] == (3, 13))"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "True");
    if has_313 {
        vec![None, Some(PY313)]
    } else {
        eprintln!("NOTE: Python {PY313} (pyenv) is not installed: the {{sha256}} peer tests run only against python3");
        vec![None]
    }
}

struct Py {
    child: Child,
    lines: Receiver<String>,
    version: String,
}

impl Py {
    fn start(version: Option<&str>, mode: &str, addr: &str, key: Option<&str>) -> Py {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/peer.py");
        let mut cmd = Command::new("python3");
        if let Some(v) = version {
            cmd.env("PYENV_VERSION", v);
        }
        let mut child = cmd
            .args([script, mode, addr, key.unwrap_or("-")])
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs");
        let out = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Py {
            child,
            lines,
            version: version.unwrap_or("default").into(),
        }
    }

    fn line(&self) -> String {
        self.lines
            .recv_timeout(T)
            .unwrap_or_else(|e| panic!("python {} said nothing within {T:?}: {e}", self.version))
    }

    fn finish(mut self) {
        for _ in 0..(T.as_millis() / 20) {
            if let Some(st) = self.child.try_wait().unwrap() {
                assert!(st.success(), "python {} exited with {st}", self.version);
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("python {} did not exit within {T:?}", self.version);
    }
}

impl Drop for Py {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn accept_bounded(l: &Listener) -> mp::Result<mp::Connection> {
    assert_eq!(mp::wait(&[l], Some(T))?, [0], "no client within {T:?}");
    l.accept()
}

fn big() -> Vec<u8> {
    (0..300_000usize).map(|i| (i % 251) as u8).collect()
}

/// Our side of peer.py's `exchange_bytes`.
fn exchange_bytes(c: &mp::Connection, py: &Py) {
    assert!(c.poll(Some(T)).unwrap());
    assert_eq!(c.recv_bytes().unwrap(), b"hello from python");
    c.send_bytes(b"hello from rust").unwrap();
    assert_eq!(py.line(), "got hello from rust");
    let b = big();
    c.send_bytes(&b).unwrap();
    assert_eq!(py.line(), "big 300000 True");
    assert!(c.poll(Some(T)).unwrap());
    let back = c.recv_bytes().unwrap();
    assert!(back.iter().eq(b.iter().rev()));
}

#[test]
fn python_client_to_our_listener() {
    for v in pythons() {
        for (addr, key) in [
            (Some(Address::Inet("127.0.0.1".into(), 0)), Some("s3cret")),
            (None, Some("s3cret")),
            (None, None),
        ] {
            let l = Listener::bind(addr, 1, key.map(str::as_bytes)).unwrap();
            let py = Py::start(v, "client", &l.address().to_string(), key);
            let c = accept_bounded(&l).unwrap();
            assert_eq!(py.line(), "connected");
            exchange_bytes(&c, &py);
            py.finish();
        }
    }
}

#[test]
fn python_client_wrong_key_then_listener_keeps_serving() {
    for v in pythons() {
        let l = Listener::bind(
            Some(Address::Inet("127.0.0.1".into(), 0)),
            1,
            Some(b"right"),
        )
        .unwrap();
        let addr = l.address().to_string();
        let py = Py::start(v, "client", &addr, Some("wrong"));
        assert!(matches!(accept_bounded(&l), Err(Error::Authentication(_))));
        assert_eq!(py.line(), "AuthenticationError");
        py.finish();
        let py = Py::start(v, "client", &addr, Some("right"));
        let c = accept_bounded(&l).unwrap();
        assert_eq!(py.line(), "connected");
        exchange_bytes(&c, &py);
        py.finish();
    }
}

fn py_listener_address(py: &Py) -> String {
    let line = py.line();
    line.strip_prefix("address ")
        .unwrap_or_else(|| panic!("unexpected {line:?}"))
        .to_string()
}

#[test]
fn our_client_to_python_listener() {
    for v in pythons() {
        for key in [Some("k3y"), None] {
            let py = Py::start(v, "listener", "-", key);
            let addr = py_listener_address(&py);
            let c = Client::connect(addr.as_str(), key.map(str::as_bytes)).unwrap();
            assert_eq!(py.line(), "connected");
            exchange_bytes(&c, &py);
            py.finish();
        }
    }
}

#[test]
fn our_client_wrong_key_to_python_listener() {
    for v in pythons() {
        let py = Py::start(v, "listener", "-", Some("right"));
        let addr = py_listener_address(&py);
        let r = Client::connect(addr.as_str(), Some(b"wrong"));
        assert!(matches!(r, Err(Error::Authentication(_))), "{v:?}: {r:?}");
        assert_eq!(py.line(), "AuthenticationError");
        py.finish();
    }
}

/// Needs `mp`'s `pickle` feature, enabled by the root package's `mp` dependency.
mod pickle {
    use super::*;
    use mp::connection::serde_pickle::Value;
    use std::collections::BTreeMap;

    fn exchange_pickle(c: &mp::Connection, py: &Py) {
        assert!(c.poll(Some(T)).unwrap());
        let v = c.recv_pickle_value().unwrap();
        let Value::List(items) = &v else {
            panic!("{v:?}")
        };
        assert_eq!(items.len(), 11);
        assert!(matches!(&items[4], Value::String(s) if s == "str \u{e9}"));
        assert!(matches!(&items[5], Value::Bytes(b) if b == b"\0bytes"));
        assert!(matches!(&items[7], Value::Tuple(t) if t.len() == 2));
        assert!(matches!(&items[9], Value::None));
        // typed decoding of parts
        let typed: (i64, i64, i64, f64) =
            mp::connection::serde_pickle::from_value(Value::Tuple(items[..4].to_vec())).unwrap();
        assert_eq!(typed, (1, -7, 1 << 40, 2.5));
        // and straight into Rust types through serde
        c.send_pickle(&"ok").unwrap();
        assert!(c.poll(Some(T)).unwrap());
        let (n, s, l): (u64, String, Vec<Option<i32>>) = c.recv_pickle().unwrap();
        assert_eq!((n, s.as_str(), l), (7, "seven", vec![Some(7), None]));
        c.send_pickle_value(&v).unwrap();
        assert!(py.line().starts_with("back [1, -7, 1099511627776, 2.5"));
        assert_eq!(py.line(), "same True");
        let mut d = BTreeMap::new();
        d.insert("k".to_string(), vec![1u8, 2]);
        c.send_pickle(&(42, None::<i32>, "hello", 1.5f64, d, true))
            .unwrap();
        assert_eq!(
            py.line(),
            "reply (42, None, 'hello', 1.5, {'k': [1, 2]}, True)"
        );
    }

    #[test]
    fn pickle_with_python_both_directions() {
        for v in pythons() {
            let l = Listener::bind(None, 1, Some(b"pk")).unwrap();
            let py = Py::start(v, "pickle_client", &l.address().to_string(), Some("pk"));
            let c = accept_bounded(&l).unwrap();
            assert_eq!(py.line(), "connected");
            exchange_pickle(&c, &py);
            py.finish();

            let py = Py::start(v, "pickle_listener", "-", Some("pk"));
            let addr = py_listener_address(&py);
            let c = Client::connect(addr.as_str(), Some(b"pk")).unwrap();
            assert_eq!(py.line(), "connected");
            exchange_pickle(&c, &py);
            py.finish();
        }
    }
}
