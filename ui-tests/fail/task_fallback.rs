// A rejected task is still emitted, so its callers add no errors of their own: the
// only error is the macro's.
#[mp::task]
async fn fetch(n: u32) -> u32 {
    n
}

fn main() {
    let _ = fetch(1);
}
