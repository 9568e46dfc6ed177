//! The docs' example of a task queue feeding worker processes and a done queue
//! collecting results; `'STOP'` sentinels become an enum variant.
//!
//! Prints lines like `\t Process-3 says that mul(19, 7) = 133` (a tab first).

use mp::{current_process, Process, Queue};
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Serialize, Deserialize, Debug, Clone, Copy)]
enum Task {
    Mul(i64, i64),
    Plus(i64, i64),
    Stop,
}

fn jitter() -> Duration {
    // time.sleep(0.5 * random.random()) without a random crate
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    Duration::from_millis(((t ^ std::process::id()) % 100) as u64)
}

fn calculate(task: Task) -> String {
    std::thread::sleep(jitter());
    let (name, a, b, r) = match task {
        Task::Mul(a, b) => ("mul", a, b, a * b),
        Task::Plus(a, b) => ("plus", a, b, a + b),
        Task::Stop => unreachable!("STOP is handled by the worker loop"),
    };
    format!(
        "{} says that {name}({a}, {b}) = {r}",
        current_process().name()
    )
}

#[mp::task]
fn worker(input: Queue<Task>, output: Queue<String>) {
    // for func, args in iter(input.get, 'STOP'):
    while let Ok(task) = input.get() {
        if let Task::Stop = task {
            break;
        }
        output.put(calculate(task)).unwrap();
    }
}

#[mp::main]
fn main() -> mp::Result<()> {
    const NUMBER_OF_PROCESSES: usize = 4;
    let tasks1: Vec<Task> = (0..20).map(|i| Task::Mul(i, 7)).collect();
    let tasks2: Vec<Task> = (0..10).map(|i| Task::Plus(i, 8)).collect();

    let task_queue = Queue::new()?;
    let done_queue = Queue::new()?;
    for &t in &tasks1 {
        task_queue.put(t)?;
    }
    for _ in 0..NUMBER_OF_PROCESSES {
        Process::new(worker, (task_queue.clone(), done_queue.clone())).start()?;
    }
    println!("Unordered results:");
    for _ in 0..tasks1.len() {
        println!("\t {}", done_queue.get()?);
    }
    for &t in &tasks2 {
        task_queue.put(t)?;
    }
    for _ in 0..tasks2.len() {
        println!("\t {}", done_queue.get()?);
    }
    for _ in 0..NUMBER_OF_PROCESSES {
        task_queue.put(Task::Stop)?;
    }
    Ok(())
}
