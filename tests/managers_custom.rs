//! Custom managers: `#[mp::shared]` types and `#[derive(mp::Manager)]` registrations,
//! across real processes under every start method. CPython's `_TestMyManager` and the
//! docs' MathsClass, Foo/Bar/baz/operator examples.

mod common;

use common::{for_each_method, join_ok};
use mp::managers::{BaseManager, IteratorProxy};
use mp::Error;
use serde::{Deserialize, Serialize};

/// The docs' `MathsClass`.
#[derive(Default, Debug)]
pub struct Maths;

#[mp::shared]
impl Maths {
    pub fn add(&self, x: i64, y: i64) -> i64 {
        x + y
    }
    pub fn mul(&self, x: i64, y: i64) -> i64 {
        x * y
    }
}

/// The docs' `Foo` (registered twice, with different exposure).
#[derive(Debug)]
pub struct Foo {
    calls: Vec<String>,
}

#[mp::shared]
impl Foo {
    pub fn new() -> Foo {
        Foo { calls: Vec::new() }
    }
    pub fn f(&mut self) -> String {
        self.calls.push("f".into());
        "you called Foo.f()".into()
    }
    pub fn g(&mut self) -> String {
        self.calls.push("g".into());
        "you called Foo.g()".into()
    }
    fn _h(&mut self) -> String {
        self.calls.push("_h".into());
        "you called Foo._h()".into()
    }
    pub fn calls(&self) -> Vec<String> {
        self.calls.clone()
    }
}

impl Default for Foo {
    fn default() -> Self {
        Foo::new()
    }
}

/// The docs' generator.
fn baz() -> impl Iterator<Item = u64> + Send {
    (0..10).map(|i| i * i)
}

/// The docs' `operator` module, as a type.
#[derive(Default)]
pub struct Operator;

#[mp::shared]
impl Operator {
    pub fn add(&self, a: i64, b: i64) -> i64 {
        a + b
    }
    pub fn pow(&self, a: u128, b: u32) -> u128 {
        a.pow(b)
    }
}

/// A counter with a fallible method, a panicking method and a method returning a new
/// shared object (`method_to_typeid`).
#[derive(Debug, Serialize, Deserialize, Clone, PartialEq, Default)]
pub struct Counter {
    pub n: i64,
    pub items: Vec<i64>,
}

#[mp::shared(
    exposed(incr, get, item, boom, spawn_child, fail),
    method_to_typeid(spawn_child = "Counter")
)]
impl Counter {
    pub fn start_at(n: i64) -> Counter {
        Counter {
            n,
            items: Vec::new(),
        }
    }
    pub fn incr(&mut self, by: i64) -> i64 {
        self.n += by;
        self.items.push(by);
        self.n
    }
    pub fn get(&self) -> i64 {
        self.n
    }
    pub fn item(&self, i: usize) -> Result<i64, String> {
        self.items
            .get(i)
            .copied()
            .ok_or_else(|| format!("no item {i}"))
    }
    pub fn boom(&self) -> i64 {
        panic!("boom at {}", self.n)
    }
    pub fn spawn_child(&self) -> Counter {
        Counter::start_at(self.n * 10)
    }
    pub fn fail(&self) {}
    /// not exposed: takes a borrow, which is fine because no proxy calls it
    pub fn peek(&self, _s: &str) -> usize {
        0
    }
}

// clippy reads the two `Foo::new` of the helper attributes as duplicated attributes
#[allow(clippy::duplicated_attributes)]
#[derive(mp::Manager)]
#[register("Maths", Maths::default)]
#[register("Foo1", Foo::new)]
#[register("Foo2", Foo::new, exposed(g, _h))]
#[register("baz", baz, proxytype = IteratorProxy<u64>)]
#[register("operator", Operator::default)]
#[register("Counter", Counter::start_at)]
pub struct MyManager;

#[test]
fn maths_class() {
    for_each_method(|ctx| {
        let m = BaseManager::<MyManager>::with_context(None, None, ctx);
        m.start().unwrap();
        let maths = m.maths().unwrap();
        assert_eq!(maths.add(4, 3).unwrap(), 7);
        assert_eq!(maths.mul(7, 8).unwrap(), 56);
        let full = m.create::<Maths>("Maths").unwrap();
        assert_eq!(full.add(1, 2).unwrap(), 3);
        assert_eq!(maths.to_string(), "Maths");
        assert!(format!("{maths:?}").starts_with("<MathsProxy typeid 'Maths' at 0x"));
        m.shutdown().unwrap();
    });
}

#[test]
fn foo1_and_foo2_exposure() {
    let m = MyManager::start().unwrap();
    let f1 = m.foo1().unwrap();
    assert_eq!(f1.f().unwrap(), "you called Foo.f()");
    assert_eq!(f1.g().unwrap(), "you called Foo.g()");
    let mut e1 = f1.exposed().to_vec();
    e1.sort();
    assert_eq!(e1, vec!["calls", "f", "g"]);
    assert!(
        matches!(f1.call_method::<String>("_h", ()), Err(Error::NotExposed { method }) if method == "_h")
    );

    let f2 = m.foo2().unwrap();
    assert_eq!(f2.g().unwrap(), "you called Foo.g()");
    assert_eq!(f2._h().unwrap(), "you called Foo._h()");
    let mut e2 = f2.exposed().to_vec();
    e2.sort();
    assert_eq!(e2, vec!["_h", "g"]);
    // `f` is not a method of Foo2Proxy (a ui-test shows it does not compile); dynamically:
    assert!(
        matches!(f2.call_method::<String>("f", ()), Err(Error::NotExposed { method }) if method == "f")
    );
    // T's full proxy for a registration with less exposure: enforced at run time
    let full = m.create::<Foo>("Foo2").unwrap();
    assert!(matches!(full.f(), Err(Error::NotExposed { .. })));
    assert_eq!(full.g().unwrap(), "you called Foo.g()");
}

#[test]
fn generator_and_operator() {
    let m = MyManager::start().unwrap();
    let it = m.baz().unwrap();
    let squares: Vec<u64> = it.map(|r| r.unwrap()).collect();
    assert_eq!(squares, vec![0, 1, 4, 9, 16, 25, 36, 49, 64, 81]);
    let op = m.operator().unwrap();
    assert_eq!(op.add(23, 45).unwrap(), 68);
    assert_eq!(op.pow(2, 94).unwrap(), 19807040628566084398385987584);
    let mut e = op.exposed().to_vec();
    e.sort();
    assert_eq!(e, vec!["add", "pow"]);
}

#[test]
fn errors_panics_and_new_objects() {
    let m = MyManager::start().unwrap();
    let c = m.counter(5).unwrap();
    assert_eq!(c.incr(2).unwrap(), 7);
    assert_eq!(c.item(0).unwrap(), Ok(2));
    assert_eq!(c.item(9).unwrap(), Err("no item 9".to_string()));
    match c.boom() {
        Err(Error::Remote { kind, message, .. }) => {
            assert_eq!(kind, "Panic");
            assert!(message.contains("boom at 7"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // the server carries on
    assert_eq!(c.get().unwrap(), 7);
    let child = c.spawn_child().unwrap();
    assert_eq!(child.get().unwrap(), 70);
    assert_eq!(m.number_of_objects().unwrap(), 2);
    drop(child);
    assert_eq!(m.number_of_objects().unwrap(), 1);
    assert_eq!(c.get_value::<Counter>().unwrap().n, 7);
    assert!(c.to_string().starts_with("Counter { n: 7"));
    assert!(matches!(
        c.call_method::<usize>("peek", ("x".to_string(),)),
        Err(Error::NotExposed { .. })
    ));
    assert!(matches!(
        c.call_method::<i64>("nope", ()),
        Err(Error::NotExposed { .. })
    ));
    // arguments of the wrong shape: an error, not a crash
    assert!(c
        .call_method::<i64>("incr", ("not a number".to_string(),))
        .is_err());
    assert_eq!(c.get().unwrap(), 7);
}

#[mp::task]
fn use_maths_in_child(maths: MathsProxy, c: CounterProxy) {
    assert_eq!(maths.add(40, 2).unwrap(), 42);
    c.incr(100).unwrap();
}

#[test]
fn proxies_of_custom_types_in_children() {
    for_each_method(|ctx| {
        let m: BaseManager<MyManager> = MyManager::new(None, None);
        m.start().unwrap();
        let maths = m.maths().unwrap();
        let c = m.counter(0).unwrap();
        let p = ctx.process(use_maths_in_child, (maths.clone(), c.clone()));
        p.start().unwrap();
        join_ok(&p);
        assert_eq!(c.get().unwrap(), 100);
        assert_eq!(m.number_of_objects().unwrap(), 2);
    });
}

/// A client-side registration: the typeid and the proxy type, no callable.
#[derive(mp::Manager)]
#[register("Maths", proxytype = MathsProxy)]
#[register("Counter", proxytype = CounterProxy)]
pub struct MathsClient;

#[test]
fn client_side_registration_connects() {
    let m = MyManager::new(("127.0.0.1", 0), b"secret");
    m.start().unwrap();
    let c = MathsClient::new(m.address(), b"secret");
    c.connect().unwrap();
    let maths = c.maths().unwrap();
    assert_eq!(maths.mul(6, 7).unwrap(), 42);
    // the client's method passes no arguments; the server's callable needs one
    let err = c.counter().unwrap_err();
    assert!(matches!(err, Error::Codec(_)), "{err:?}");
    drop(c);
    assert_eq!(
        maths.add(1, 1).unwrap(),
        2,
        "a connected handle leaves the server running"
    );
}

/// A shared type in another module: the registration names it by path.
mod shapes {
    #[derive(Debug, Default)]
    pub struct Square {
        pub side: f64,
    }

    #[mp::shared]
    impl Square {
        pub fn with_side(side: f64) -> Square {
            Square { side }
        }
        pub fn area(&self) -> f64 {
            self.side * self.side
        }
        pub fn grow(&mut self, by: f64) {
            self.side += by;
        }
    }
}

#[derive(mp::Manager)]
#[register("Square", crate::shapes::Square::with_side)]
pub struct ShapesManager;

#[test]
fn shared_type_from_another_module() {
    let m = ShapesManager::start().unwrap();
    let sq: shapes::SquareProxy = m.square(3.0).unwrap();
    assert_eq!(sq.area().unwrap(), 9.0);
    sq.grow(1.0).unwrap();
    assert_eq!(sq.area().unwrap(), 16.0);
    assert_eq!(sq.to_string(), "Square { side: 4.0 }");
}
