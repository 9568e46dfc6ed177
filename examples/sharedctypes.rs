//! The docs' `multiprocessing.sharedctypes` example: a ctypes `Structure` becomes a
//! `#[repr(C)]` struct with `#[derive(mp::Shared)]`. Prints
//! ```text
//! 49
//! 0.1111111111111111
//! HELLO WORLD
//! [(3.515625, 39.0625), (33.0625, 4.0), (5.640625, 90.25)]
//! ```

use mp::{Array, Lock, Process, RawValue, Value};

#[derive(Clone, Copy, Debug, mp::Shared)]
#[repr(C)]
struct Point {
    x: f64,
    y: f64,
}

#[mp::task]
fn modify(n: Value<i32>, x: RawValue<f64>, s: Array<u8>, a: Array<Point>) {
    {
        let mut n = n.lock();
        *n = n.pow(2); // n.value **= 2
    }
    x.set(x.get().powi(2)); // x.value **= 2
    s.set_value(&s.value().to_ascii_uppercase()).unwrap(); // s.value = s.value.upper()
    for a in a.lock().iter_mut() {
        a.x = a.x.powi(2);
        a.y = a.y.powi(2);
    }
}

#[mp::main]
fn main() -> mp::Result<()> {
    let lock = Lock::new()?;

    let n = Value::new(7i32)?;
    let x = RawValue::new(1.0f64 / 3.0)?; // Value(c_double, 1.0/3.0, lock=False)
    let s = Array::from_slice_with_lock(b"hello world", lock.clone())?;
    let a = Array::from_slice_with_lock(
        &[
            Point { x: 1.875, y: -6.25 },
            Point { x: -5.75, y: 2.0 },
            Point { x: 2.375, y: 9.5 },
        ],
        lock,
    )?;

    let p = Process::new(modify, (n.clone(), x.clone(), s.clone(), a.clone()));
    p.start()?;
    p.join()?;

    println!("{}", n.get());
    println!("{}", x.get());
    println!("{}", String::from_utf8_lossy(&s.value()));
    let pts: Vec<(f64, f64)> = a.to_vec().iter().map(|p| (p.x, p.y)).collect();
    println!("{pts:?}");
    Ok(())
}
