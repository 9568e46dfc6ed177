//! The docs' example showing the individual process ids involved:
//!
//! ```python
//! def info(title):
//!     print(title)
//!     print('module name:', __name__)
//!     print('parent process:', os.getppid())
//!     print('process id:', os.getpid())
//!
//! def f(name):
//!     info('function f')
//!     print('hello', name)
//!
//! if __name__ == '__main__':
//!     info('main line')
//!     p = Process(target=f, args=('bob',))
//!     p.start()
//!     p.join()
//! ```
//! (`parent process` of a forkserver child is the fork server, as in Python.)

use mp::Process;

fn info(title: &str) {
    println!("{title}");
    println!("module name: {}", module_path!());
    println!("parent process: {}", std::os::unix::process::parent_id());
    println!("process id: {}", std::process::id());
}

#[mp::task]
fn f(name: String) {
    info("function f");
    println!("hello {name}");
}

#[mp::main]
fn main() -> mp::Result<()> {
    info("main line");
    let p = Process::new(f, ("bob".to_string(),));
    p.start()?;
    p.join()?;
    Ok(())
}
