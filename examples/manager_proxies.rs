//! The docs' "customized managers and proxies" program (`mp_newtype.py`): one type
//! registered twice with different exposure, a generator behind a proxy, and a module
//! (`operator`) served as an object.
//!
//! ```python
//! class Foo:
//!     def f(self): print('you called Foo.f()')
//!     def g(self): print('you called Foo.g()')
//!     def _h(self): print('you called Foo._h()')
//!
//! def baz():
//!     for i in range(10):
//!         yield i*i
//!
//! class GeneratorProxy(BaseProxy):
//!     _exposed_ = ['__next__']
//!     ...
//!
//! MyManager.register('Foo1', Foo)
//! MyManager.register('Foo2', Foo, exposed=('g', '_h'))
//! MyManager.register('baz', baz, proxytype=GeneratorProxy)
//! MyManager.register('operator', get_operator_module)
//! ```
//!
//! `Foo2`'s proxy has no `f` at all: calling it does not compile; dynamically,
//! `call_method("f", ())` is `Error::NotExposed`.

use mp::managers::IteratorProxy;

pub struct Foo;

#[mp::shared]
impl Foo {
    pub fn new() -> Foo {
        Foo
    }
    pub fn f(&self) -> String {
        "you called Foo.f()".into()
    }
    pub fn g(&self) -> String {
        "you called Foo.g()".into()
    }
    fn _h(&self) -> String {
        "you called Foo._h()".into()
    }
}

impl Default for Foo {
    fn default() -> Self {
        Foo::new()
    }
}

fn baz() -> impl Iterator<Item = u64> + Send {
    (0..10).map(|i| i * i)
}

/// Python's `operator` module, as an object.
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

// clippy reads the two `Foo::new` of the helper attributes as duplicated attributes
#[allow(clippy::duplicated_attributes)]
#[derive(mp::Manager)]
#[register("Foo1", Foo::new)]
#[register("Foo2", Foo::new, exposed(g, _h))]
#[register("baz", baz, proxytype = IteratorProxy<u64>)]
#[register("operator", Operator::default)]
pub struct MyManager;

#[mp::main]
fn main() -> mp::Result<()> {
    let manager = MyManager::start()?;
    println!("{}", "-".repeat(20));

    let f1 = manager.foo1()?;
    println!("{}", f1.f()?);
    println!("{}", f1.g()?);
    assert!(matches!(
        f1.call_method::<String>("_h", ()),
        Err(mp::Error::NotExposed { .. })
    ));
    println!("{}", "-".repeat(20));

    let f2 = manager.foo2()?;
    println!("{}", f2.g()?);
    println!("{}", f2._h()?);
    assert!(matches!(
        f2.call_method::<String>("f", ()),
        Err(mp::Error::NotExposed { .. })
    ));
    println!("{}", "-".repeat(20));

    let it = manager.baz()?;
    let mut line = String::new();
    for i in it {
        line.push_str(&format!("<{}> ", i?));
    }
    println!("{line}");
    println!("{}", "-".repeat(20));

    let op = manager.operator()?;
    println!("op.add(23, 45) = {}", op.add(23, 45)?);
    println!("op.pow(2, 94) = {}", op.pow(2, 94)?);
    let names: Vec<String> = op.exposed().iter().map(|n| format!("'{n}'")).collect();
    println!("op._exposed_ = ({})", names.join(", "));
    Ok(())
}
