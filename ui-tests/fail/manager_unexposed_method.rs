// Each registration's proxy holds only its exposed methods: `f` is not exposed by
// "Foo2", so calling it does not compile (`call_method("f", ())` is `NotExposed` at run
// time instead).
pub struct Foo;

#[mp::shared]
impl Foo {
    pub fn new() -> Foo {
        Foo
    }
    pub fn f(&self) {}
    pub fn g(&self) {}
    fn _h(&self) {}
}

#[derive(mp::Manager)]
#[register("Foo2", Foo::new, exposed(g, _h))]
pub struct MyManager;

fn main() -> mp::Result<()> {
    let m = MyManager::start()?;
    let f2 = m.foo2()?;
    f2.g()?;
    f2._h()?;
    f2.f()?;
    Ok(())
}
