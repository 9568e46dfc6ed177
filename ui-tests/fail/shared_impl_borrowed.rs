pub struct Greeter;

#[mp::shared]
impl Greeter {
    pub fn greet(&self, name: &str) -> String {
        format!("hello {name}")
    }
    pub fn first(&self) -> &'static str {
        "ok: 'static is owned"
    }
    pub fn longest<'a>(&'a self, a: Vec<String>) -> &'a str {
        let _ = a;
        ""
    }
}

fn main() {}
