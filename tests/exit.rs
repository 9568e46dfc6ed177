//! Exit handling of a real program with `#[mp::main]`: when `main` returns or panics,
//! non-daemonic children are joined, daemonic ones terminated and the fork server
//! stopped; nothing of the program's process tree is left (no zombie, no orphan).
//!
//! This file is its own program (`harness = false`): run without arguments it runs the
//! checks, each of which executes this same binary with `--scenario NAME`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[mp::task]
fn slow_then_mark(path: String) {
    std::thread::sleep(Duration::from_millis(300));
    std::fs::write(path, b"done").unwrap();
}

#[mp::task]
fn report_ppid_and_sleep() {
    println!("server {}", std::os::unix::process::parent_id());
    println!("daemon {}", std::process::id());
    use std::io::Write;
    std::io::stdout().flush().unwrap();
    std::thread::sleep(Duration::from_secs(120));
}

fn scenario(kind: &str, marker: &str) {
    use std::io::Write;
    let ctx = mp::get_context(Some(mp::StartMethod::ForkServer)).unwrap();
    let daemon = ctx.process(report_ppid_and_sleep, ()).with_daemon(true);
    daemon.start().unwrap();
    let worker = ctx.process(slow_then_mark, (marker.to_string(),));
    worker.start().unwrap();
    let spawned = mp::get_context(Some(mp::StartMethod::Spawn))
        .unwrap()
        .process(slow_then_mark, (format!("{marker}.spawn"),));
    spawned.start().unwrap();
    println!("worker {}", worker.pid().unwrap());
    println!("worker {}", spawned.pid().unwrap());
    std::io::stdout().flush().unwrap();
    // wait until the daemon has reported (so the server pid is known), then leave main
    std::thread::sleep(Duration::from_millis(200));
    if kind == "panic" {
        panic!("main panics with children running");
    }
}

/// Whether `pid` still exists (a zombie counts: somebody failed to reap it).
fn exists(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

fn check(kind: &str) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let marker = dir.path().join("marker");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--scenario", kind, marker.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let stdout = child.stdout.take().unwrap();
    let lines = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().map_err(|e| e.to_string())? {
            break s;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            return Err(format!("{kind}: program did not exit"));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let lines = lines.join().unwrap();
    let expected = if kind == "panic" { Some(101) } else { Some(0) };
    if status.code() != expected {
        return Err(format!("{kind}: exit status {status:?}, lines {lines:?}"));
    }
    if !marker.exists() || !dir.path().join("marker.spawn").exists() {
        return Err(format!(
            "{kind}: a non-daemonic child was not joined before exit"
        ));
    }
    let pids: Vec<u32> = lines
        .iter()
        .filter_map(|l| l.split_once(' ').and_then(|(_, p)| p.parse().ok()))
        .collect();
    if pids.len() != 4 {
        return Err(format!("{kind}: expected 4 pids, got {lines:?}"));
    }
    // the daemonic child, the workers and the fork server must all be gone (allow the
    // kernel a moment to tear them down)
    let t = Instant::now();
    while pids.iter().any(|&p| exists(p)) {
        if t.elapsed() > Duration::from_secs(10) {
            let left: Vec<_> = pids.iter().filter(|&&p| exists(p)).collect();
            return Err(format!(
                "{kind}: processes left behind: {left:?} (of {lines:?})"
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// `MP_WATCHDOG_SECS` aborts a program that runs too long (CI's guard against a hung test).
fn check_watchdog() -> Result<(), String> {
    use std::os::unix::process::ExitStatusExt;
    let start = Instant::now();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .arg("--hang")
        .env(mp::process::ENV_WATCHDOG, "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let status = loop {
        if let Some(s) = child.try_wait().map_err(|e| e.to_string())? {
            break s;
        }
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            return Err("the watchdog did not fire".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).ok();
    if status.signal() != Some(libc::SIGABRT) || !err.contains("mp watchdog") {
        return Err(format!("status {status:?}, stderr {err:?}"));
    }
    Ok(())
}

#[mp::main]
fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 2 && args[1] == "--hang" {
        std::thread::sleep(Duration::from_secs(60));
        return;
    }
    if args.len() == 4 && args[1] == "--scenario" {
        scenario(&args[2], &args[3]);
        return;
    }
    let mut failed = 0;
    match check_watchdog() {
        Ok(()) => println!("test watchdog_aborts_a_hung_program ... ok"),
        Err(e) => {
            println!("test watchdog_aborts_a_hung_program ... FAILED: {e}");
            failed += 1;
        }
    }
    for kind in ["return", "panic"] {
        match check(kind) {
            Ok(()) => println!("test exit_handling_after_{kind} ... ok"),
            Err(e) => {
                println!("test exit_handling_after_{kind} ... FAILED: {e}");
                failed += 1;
            }
        }
    }
    println!(
        "\ntest result: {}. {} passed; {failed} failed",
        if failed == 0 { "ok" } else { "FAILED" },
        3 - failed
    );
    if failed > 0 {
        std::process::exit(1);
    }
}
