//! The docs' "Sharing state between processes: shared memory" example:
//!
//! ```python
//! def f(n, a):
//!     n.value = 3.1415927
//!     for i in range(len(a)):
//!         a[i] = -a[i]
//!
//! num = Value('d', 0.0)
//! arr = Array('i', range(10))
//! p = Process(target=f, args=(num, arr)); p.start(); p.join()
//! print(num.value)
//! print(arr[:])
//! ```
//! prints `3.1415927` and `[0, -1, -2, -3, -4, -5, -6, -7, -8, -9]`.

#![allow(clippy::approx_constant)] // the docs example writes 3.1415927 literally
use mp::{Array, Process, Value};

#[mp::task]
fn f(n: Value<f64>, a: Array<i32>) {
    n.set(3.1415927);
    for i in 0..a.len() {
        a.set(i, -a.get(i).unwrap()).unwrap();
    }
}

#[mp::main]
fn main() -> mp::Result<()> {
    let num = Value::new(0.0f64)?; // 'd'
    let arr = Array::from_slice(&(0..10).collect::<Vec<i32>>())?; // 'i'

    let p = Process::new(f, (num.clone(), arr.clone()));
    p.start()?;
    p.join()?;

    println!("{}", num.get());
    println!("{:?}", arr.to_vec());
    Ok(())
}
