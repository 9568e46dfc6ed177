#[derive(Default)]
pub struct Maths;

#[mp::shared]
impl Maths {
    pub fn add(&self, x: i64, y: i64) -> i64 {
        x + y
    }
}

#[derive(mp::Manager)]
#[register("Maths", Maths::default)]
#[register("Maths", Maths::default)]
pub struct MyManager;

fn main() {}
