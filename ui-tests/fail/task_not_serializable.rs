struct Opaque;

#[mp::task]
fn take(x: u32, o: Opaque) {
    let _ = (x, o);
}

#[mp::task]
fn give() -> Opaque {
    Opaque
}

fn main() {}
