struct NotShared {
    x: u32,
}

#[derive(mp::Shared)]
#[repr(C)]
struct Outer {
    inner: NotShared,
}

fn main() {}
