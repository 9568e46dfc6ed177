#[derive(mp::Shared)]
enum Color {
    Red,
    Green,
}

#[derive(mp::Shared)]
#[repr(u8)]
enum WithData {
    A(u32),
}

fn main() {}
