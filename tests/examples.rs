//! The ported docs examples print what Python's docs print. `cargo test` builds the
//! examples beside the tests; each runs here as a real program, bounded by a timeout.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

fn example(name: &str) -> PathBuf {
    // target/<profile>/deps/examples-<hash> -> target/<profile>/examples/<name>
    let exe = std::env::current_exe().unwrap();
    exe.parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(name)
}

fn run(name: &str) -> String {
    run_with(name, &[])
}

fn run_with(name: &str, args: &[&str]) -> String {
    run_full(name, args).0
}

/// Runs an example to its end (within 60 s), its stdout and stderr read as it runs so
/// that neither pipe can fill and stall it; returns both.
fn run_full(name: &str, args: &[&str]) -> (String, String) {
    let path = example(name);
    assert!(path.exists(), "{} was not built", path.display());
    let child = Command::new(&path)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            // SAFETY: kill(2) of our own child's pid; it has not been reaped (no output yet).
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("example {name} did not finish in 60 s");
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "{name}: {:?}\n{stdout}\n{stderr}",
        out.status
    );
    (stdout, stderr)
}

#[test]
fn hello() {
    assert_eq!(run("hello"), "hello bob\n");
}

#[test]
fn info() {
    let out = run("info");
    assert!(out.starts_with("main line\nmodule name: info\n"), "{out}");
    assert!(
        out.contains("function f\n") && out.ends_with("hello bob\n"),
        "{out}"
    );
}

#[test]
fn pipe_and_queue() {
    assert_eq!(run("pipe"), "[42, None, 'hello']\n");
    assert_eq!(run("queue"), "[42, None, 'hello']\n");
}

#[test]
fn shared_value_array() {
    assert_eq!(
        run("shared_value_array"),
        "3.1415927\n[0, -1, -2, -3, -4, -5, -6, -7, -8, -9]\n"
    );
}

#[test]
fn sharedctypes() {
    assert_eq!(
        run("sharedctypes"),
        "49\n0.1111111111111111\nHELLO WORLD\n[(3.515625, 39.0625), (33.0625, 4.0), (5.640625, 90.25)]\n"
    );
}

#[test]
fn start_methods() {
    assert_eq!(
        run("start_methods"),
        "hello\nhello\nforkserver: hello\nspawn: hello\nfork: hello\n"
    );
}

#[test]
fn queue_workers() {
    let out = run("queue_workers");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "Unordered results:");
    assert_eq!(lines.len(), 31);
    for i in 0..20 {
        assert!(out.contains(&format!("mul({i}, 7) = {}\n", i * 7)), "{out}");
    }
    for i in 0..10 {
        assert!(
            out.contains(&format!("plus({i}, 8) = {}\n", i + 8)),
            "{out}"
        );
    }
}

#[test]
fn wait_pipes() {
    let out = run("wait_pipes");
    assert_eq!(out.lines().count(), 40, "{out}");
    for p in 1..=4 {
        for i in 0..10 {
            assert!(out.contains(&format!("({i}, 'Process-{p}')")), "{out}");
        }
    }
}

#[test]
fn listener_client() {
    let out = run("listener_client");
    assert!(
        out.contains("[2.25, None, 'junk', float]\nb'hello'\n"),
        "{out}"
    );
}

#[test]
fn tour_runs() {
    let out = run("tour");
    assert!(out.contains("counter = 40000 (expected 40000)"), "{out}");
    assert!(
        out.contains("array negated by a child: [0, -1, -2"),
        "{out}"
    );
    assert!(out.contains("now holds \"HELLO\""), "{out}");
    assert!(
        out.contains("sum of 100 000 squares = 333328333350000 in"),
        "{out}"
    );
    assert!(
        out.contains("the child reversed the list: [4, 3, 2, 1, 0]"),
        "{out}"
    );
    assert!(out.contains("and signed the dict: [\"filler\"]"), "{out}");
}

#[test]
fn pool() {
    let out = run("pool");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "[0, 1, 4, 9, 16, 25, 36, 49, 64, 81]", "{out}");
    let mut unordered: Vec<u64> = lines[1..11].iter().map(|l| l.parse().unwrap()).collect();
    unordered.sort();
    assert_eq!(unordered, [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]);
    assert_eq!(lines[11], "400");
    assert!(
        out.ends_with(
            "We lacked patience and got a multiprocessing.TimeoutError\n\
         For the moment, the pool remains available for more work\n\
         Now the pool is closed and no longer available\n"
        ),
        "{out}"
    );
}

#[test]
fn pool_test_on_processes_and_threads() {
    for args in [&[][..], &["--threads"][..]] {
        let (out, err) = run_full("pool_test", args);
        // tasks that panic report through their results, as in CPython: nothing printed
        assert!(!err.contains("panicked"), "{args:?}: stderr has\n{err}");
        for want in [
            "says that mul(9, 7) = 63",
            "Got TaskPanicked as expected from pool.apply()",
            "Got TaskPanicked as expected from list(pool.imap())",
            "callbacks succeeded",
            "close() succeeded",
            "terminate() succeeded",
        ] {
            assert!(out.contains(want), "{args:?}: no {want:?} in\n{out}");
        }
    }
}

#[test]
fn pool_progress() {
    assert_eq!(
        run("pool_progress"),
        "20000 numbers done; the longest Collatz chain has 278 steps\n"
    );
}

#[test]
fn managers() {
    assert_eq!(
        run("manager"),
        "{1: '1', '2': 2, 0.25: None}\n[9, 8, 7, 6, 5, 4, 3, 2, 1, 0]\n"
    );
    assert_eq!(run("custom_manager"), "7\n56\n");
    let dashes = "-".repeat(20);
    assert_eq!(
        run("manager_proxies"),
        format!(
            "{dashes}\nyou called Foo.f()\nyou called Foo.g()\n{dashes}\nyou called Foo.g()\n\
             you called Foo._h()\n{dashes}\n<0> <1> <4> <9> <16> <25> <36> <49> <64> <81> \n\
             {dashes}\nop.add(23, 45) = 68\nop.pow(2, 94) = 19807040628566084398385987584\n\
             op._exposed_ = ('add', 'pow')\n"
        )
    );
    assert_eq!(
        run("remote_manager"),
        "server listening with authkey \"abracadabra\"\nclient 1 put 'hello'\n\
         client 2 got \"hello\"\na client with the wrong authkey is refused\n"
    );
}
