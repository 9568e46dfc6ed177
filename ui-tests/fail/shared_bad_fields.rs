#[derive(mp::Shared)]
#[repr(C)]
struct Bad {
    name: String,
}

#[derive(mp::Shared)]
#[repr(C)]
struct Bad2 {
    ok: u32,
    items: Vec<u8>,
    ptr: *const u8,
    boxed: Box<u32>,
}

#[derive(mp::Shared)]
#[repr(C)]
struct Bad3 {
    r: &'static u32,
}

fn main() {}
