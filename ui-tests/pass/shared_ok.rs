#[derive(Clone, Copy, mp::Shared)]
#[repr(C)]
struct Point {
    x: f64,
    y: f64,
}

#[derive(Clone, Copy, mp::Shared)]
#[repr(C)]
struct Shape {
    corners: [Point; 4],
    kind: Kind,
    visible: bool,
}

#[derive(Clone, Copy, mp::Shared)]
#[repr(u8)]
enum Kind {
    Square,
    Other = 7,
}

fn main() {
    let v = mp::Value::new(Shape {
        corners: [Point { x: 0.0, y: 1.0 }; 4],
        kind: Kind::Other,
        visible: true,
    })
    .unwrap();
    assert!(v.get().visible);
    let _ = (Kind::Square, v.get().kind, v.get().corners[0].x);
    let _a = mp::Array::<Shape>::new(3).unwrap();
}
