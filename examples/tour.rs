//! A tour of `mp`: what Python's multiprocessing offers, in Rust. Grows with each area.

use mp::{Process, StartMethod};
use std::time::{Duration, Instant};

#[mp::task]
fn greet(name: String) {
    let me = mp::current_process();
    println!(
        "  hello {name} from {} (pid {}, parent {:?})",
        me.name(),
        me.pid().unwrap_or(0),
        mp::parent_process().and_then(|p| p.pid())
    );
}

#[mp::task]
fn square(x: u64) -> u64 {
    x * x
}

#[mp::task]
fn crash() {
    panic!("a worker crashes; the parent carries on")
}

#[mp::task]
fn sleep_forever() {
    std::thread::sleep(Duration::from_secs(3600));
}

#[mp::main]
fn main() -> mp::Result<()> {
    println!("== processes under the three start methods");
    println!(
        "  cpu_count = {}, process_cpu_count = {}",
        mp::cpu_count(),
        mp::process_cpu_count()
    );
    for method in [
        StartMethod::Fork,
        StartMethod::Spawn,
        StartMethod::ForkServer,
    ] {
        let ctx = mp::get_context(Some(method))?;
        let t = Instant::now();
        let p = ctx.process(greet, (method.to_string(),));
        p.start()?;
        p.join()?;
        println!("  {method}: {p:?} in {:.2?}", t.elapsed());
    }

    println!("== mp::spawn returns the task's value");
    let handles: Vec<_> = (1..=4)
        .map(|x| mp::spawn(square, (x,)))
        .collect::<mp::Result<_>>()?;
    let squares: Vec<u64> = handles
        .into_iter()
        .map(|h| h.join())
        .collect::<mp::Result<_>>()?;
    println!("  squares: {squares:?}");

    println!("== crash isolation");
    match mp::spawn(crash, ())?.join() {
        Err(e) => println!("  the child panicked, we got: {e}"),
        Ok(()) => println!("  unexpected success"),
    }
    let p = Process::new(sleep_forever, ()).with_name("sleeper");
    p.start()?;
    p.terminate()?;
    p.join()?;
    println!("  terminated: {p:?}");
    Ok(())
}
