#[mp::task]
fn generic<T: Clone>(x: T) -> T {
    x
}

fn main() {}
