//! The docs' queue test program: a child puts 30 squares at random intervals, then
//! `'STOP'`; the parent gets with `timeout=0.3`, printing `TIMEOUT` when none came.

use mp::{Error, Process, Queue};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::time::Duration;

#[derive(Serialize, Deserialize, PartialEq)]
enum Msg {
    Value(u64),
    Stop,
}

#[mp::task]
fn queue_func(queue: Queue<Msg>) {
    let mut seed = std::process::id() as u64;
    for i in 0..30u64 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        std::thread::sleep(Duration::from_millis((seed >> 33) % 500)); // 0.5 * random()
        queue.put(Msg::Value(i * i)).unwrap();
    }
    queue.put(Msg::Stop).unwrap();
}

#[mp::main]
fn main() -> mp::Result<()> {
    let q = Queue::new()?;
    let p = Process::new(queue_func, (q.clone(),));
    p.start()?;
    loop {
        match q.get_timeout(Duration::from_millis(300)) {
            Ok(Msg::Value(o)) => {
                print!("{o} ");
                std::io::stdout().flush()?;
            }
            Ok(Msg::Stop) => {
                print!("STOP ");
                break;
            }
            Err(Error::Empty) => println!("TIMEOUT"),
            Err(e) => return Err(e),
        }
    }
    println!();
    p.join()?;
    Ok(())
}
