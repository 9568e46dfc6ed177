pub struct Foo;

#[mp::shared]
impl Foo {
    pub fn new() -> Foo {
        Foo
    }
    pub fn f(&self) {}
    pub fn g(&self) {}
    fn _h(&self, _s: &str) {}
}

#[derive(mp::Manager)]
#[register("Foo2", Foo::new, exposed(g, _h, k))]
pub struct MyManager;

fn main() {}
