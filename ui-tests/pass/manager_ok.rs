// The manager declaration of API.md compiles with nothing imported beyond the types.
#[derive(Default, Debug)]
pub struct Maths;

#[mp::shared]
impl Maths {
    pub fn add(&self, x: i64, y: i64) -> i64 {
        x + y
    }
}

pub struct Foo;

#[mp::shared]
impl Foo {
    pub fn new() -> Foo {
        Foo
    }
    pub fn f(&self) -> u8 {
        1
    }
    pub fn g(&self) -> u8 {
        2
    }
    fn _h(&self) -> u8 {
        3
    }
}

fn baz() -> impl Iterator<Item = u64> + Send {
    (0..3).map(|i| i * i)
}

#[allow(clippy::duplicated_attributes)]
#[derive(mp::Manager)]
#[register("Maths", Maths::default)]
#[register("Foo1", Foo::new)]
#[register("Foo2", Foo::new, exposed(g, _h))]
#[register("baz", baz, proxytype = mp::managers::IteratorProxy<u64>)]
#[register("get_queue", proxytype = mp::managers::QueueProxy<String>)]
#[register("Hidden", Maths::default, create_method = false)]
pub struct MyManager;

#[allow(dead_code)]
fn uses() -> mp::Result<()> {
    let m = MyManager::start()?;
    let maths: MathsProxy = m.maths()?;
    let _: i64 = maths.add(4, 3)?;
    let full: MathsProxy = m.create::<Maths>("Maths")?;
    let _ = full;
    let f2: Foo2Proxy = m.foo2()?;
    let _: u8 = f2.g()?;
    let _: u8 = f2._h()?;
    let f1: FooProxy = m.foo1()?;
    let _: u8 = f1.f()?;
    let it: mp::managers::IteratorProxy<u64> = m.baz()?;
    let _: Vec<mp::Result<u64>> = it.collect();
    let q: mp::managers::QueueProxy<String> = m.get_queue()?;
    let _ = q;
    let unstarted = MyManager::new(("127.0.0.1", 50000), b"key");
    let _ = unstarted;
    Ok(())
}

fn main() {}
