//! The docs' manager example (`multiprocessing.Manager()`):
//!
//! ```python
//! def f(d, l):
//!     d[1] = '1'
//!     d['2'] = 2
//!     d[0.25] = None
//!     l.reverse()
//!
//! if __name__ == '__main__':
//!     with Manager() as manager:
//!         d = manager.dict()
//!         l = manager.list(range(10))
//!         p = Process(target=f, args=(d, l))
//!         p.start()
//!         p.join()
//!         print(d)    # {1: '1', '2': 2, 0.25: None}
//!         print(l)    # [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]
//! ```
//!
//! Mixed keys and values go through [`mp::managers::Value`]; a typed
//! `DictProxy<K, V>` works the same way for one key and value type.

use mp::managers::{DictProxy, ListProxy, Value};
use mp::Process;

#[mp::task]
fn f(d: DictProxy<Value, Value>, l: ListProxy<i32>) {
    d.insert(1.into(), "1".into()).unwrap();
    d.insert("2".into(), 2.into()).unwrap();
    d.insert(0.25.into(), Value::None).unwrap();
    l.reverse().unwrap();
}

#[mp::main]
fn main() -> mp::Result<()> {
    let manager = mp::Manager::new()?;
    let d = manager.dict::<Value, Value>()?;
    let l = manager.list((0..10).collect())?;
    let p = Process::new(f, (d.clone(), l.clone()));
    p.start()?;
    p.join()?;
    println!("{d}");
    println!("{l}");
    Ok(())
}
