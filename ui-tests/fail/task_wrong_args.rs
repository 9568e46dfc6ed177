mp::test_support!();

#[mp::task]
fn add(a: u32, b: u32) -> u32 {
    a + b
}

fn main() {
    let _p = mp::Process::new(add, ("one".to_string(), 2u32));
}
