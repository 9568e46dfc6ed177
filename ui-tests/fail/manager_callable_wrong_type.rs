#[derive(Default)]
pub struct Maths;

#[mp::shared]
impl Maths {
    pub fn add(&self, x: i64, y: i64) -> i64 {
        x + y
    }
    pub fn not_maths() -> String {
        String::new()
    }
}

fn squares() -> Vec<u64> {
    vec![1, 4, 9]
}

#[derive(mp::Manager)]
#[register("Maths", Maths::not_maths)]
#[register("squares", squares, proxytype = mp::managers::IteratorProxy<u64>)]
pub struct MyManager;

fn main() {}
