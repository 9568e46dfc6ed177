mp::test_support!();

#[mp::task]
fn zero() {}

#[mp::task]
fn many(a: u8, b: String, c: Vec<u64>, d: Option<(i32, f64)>, e: bool, f: char, g: u128, h: [u8; 4]) -> usize {
    let _ = (a, b, d, e, f, g, h);
    c.len()
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Job(u32);

#[mp::task]
impl mp::Run for Job {
    fn run(self) {}
}

#[mp::main]
fn main() {
    // f stays a plain function
    assert_eq!(many(1, "b".into(), vec![1, 2], None, true, 'x', 7, [0; 4]), 2);
    zero();
    let _ = mp::Process::new(many, (1, "b".to_string(), vec![1], None, true, 'x', 7u128, [0u8; 4]));
    let _ = mp::Process::from_run(Job(1));
}
