pub struct Maths;

#[mp::shared(exposed(add, sub))]
impl Maths {
    pub fn add(&self, x: i64, y: i64) -> i64 {
        x + y
    }
}

fn main() {
    // the type and its methods still exist (no cascade of errors)
    let _ = Maths.add(1, 2);
}
