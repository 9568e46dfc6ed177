//! Global start-method state and `set_executable`: one sequential test, since these
//! settings are process-wide.
mp::test_support!();

use mp::{Error, StartMethod};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

#[mp::task]
fn noop() {}

static PRELOADED: AtomicBool = AtomicBool::new(false);

#[mp::task]
fn preload_marker() {
    PRELOADED.store(true, Ordering::SeqCst);
}

#[mp::task]
fn preloaded() -> bool {
    PRELOADED.load(Ordering::SeqCst)
}

#[mp::task]
fn env_var(name: String) -> Option<String> {
    std::env::var(name).ok()
}

#[mp::task]
fn log_level() -> String {
    log::max_level().to_string()
}

#[test]
fn start_methods_and_contexts() {
    assert_eq!(
        mp::get_all_start_methods(),
        vec![
            StartMethod::ForkServer,
            StartMethod::Spawn,
            StartMethod::Fork
        ]
    );
    for (s, m) in [
        ("fork", StartMethod::Fork),
        ("spawn", StartMethod::Spawn),
        ("forkserver", StartMethod::ForkServer),
    ] {
        assert_eq!(s.parse::<StartMethod>().unwrap(), m);
        assert_eq!(m.to_string(), s);
    }
    assert!("threads".parse::<StartMethod>().is_err());

    // preload runs in the fork server (before any forkserver child exists)
    mp::set_forkserver_preload(&["context::preload_marker"]);
    // the environment: spawn children see the parent's at start, forkserver children
    // the one the server started with
    std::env::set_var("MP_CONTEXT_TEST", "before");
    let fs = mp::get_context(Some(StartMethod::ForkServer)).unwrap();
    let spawn = mp::get_context(Some(StartMethod::Spawn)).unwrap();
    mp::set_start_method_force(Some(StartMethod::ForkServer));
    assert!(
        mp::spawn(preloaded, ()).unwrap().join().unwrap(),
        "preloaded in the server"
    );
    assert!(!PRELOADED.load(Ordering::SeqCst), "not in the parent");
    std::env::set_var("MP_CONTEXT_TEST", "after");
    let var = || {
        mp::spawn(env_var, ("MP_CONTEXT_TEST".to_string(),))
            .unwrap()
            .join()
            .unwrap()
    };
    assert_eq!(
        var().as_deref(),
        Some("before"),
        "forkserver: env of the server's start"
    );
    mp::set_start_method_force(Some(StartMethod::Spawn));
    assert_eq!(var().as_deref(), Some("after"), "spawn: env at start");
    mp::set_start_method_force(Some(StartMethod::Fork));
    assert_eq!(var().as_deref(), Some("after"), "fork: env at start");
    let _ = (fs, spawn);
    // the log level set with log_to_stderr is inherited
    mp::log_to_stderr(log::LevelFilter::Info);
    for m in mp::get_all_start_methods() {
        mp::set_start_method_force(Some(m));
        assert_eq!(
            mp::spawn(log_level, ()).unwrap().join().unwrap(),
            "INFO",
            "{m}"
        );
    }
    mp::log_to_stderr(log::LevelFilter::Off);
    mp::set_start_method_force(None);

    assert_eq!(mp::start_method_if_set(), None);
    let default_ctx = mp::get_context(None).unwrap();
    mp::set_start_method(StartMethod::Spawn).unwrap();
    assert_eq!(
        default_ctx.get_start_method(),
        StartMethod::Spawn,
        "the default context follows"
    );
    assert!(matches!(
        mp::set_start_method(StartMethod::Fork),
        Err(Error::InvalidState(_))
    ));
    assert_eq!(mp::get_start_method(), StartMethod::Spawn);
    mp::set_start_method_force(Some(StartMethod::Fork));
    assert_eq!(mp::get_start_method(), StartMethod::Fork);
    mp::set_start_method_force(None);
    assert_eq!(mp::start_method_if_set(), None);
    assert_eq!(
        mp::get_start_method(),
        StartMethod::ForkServer,
        "default is forkserver"
    );
    assert_eq!(
        mp::start_method_if_set(),
        Some(StartMethod::ForkServer),
        "fixed by use"
    );

    // one program, three contexts at once
    let procs: Vec<_> = mp::get_all_start_methods()
        .into_iter()
        .map(|m| {
            let ctx = mp::get_context(Some(m)).unwrap();
            assert_eq!(ctx.get_start_method(), m);
            let p = ctx.process(noop, ());
            p.start().unwrap();
            p
        })
        .collect();
    for p in &procs {
        p.join_timeout(Duration::from_secs(30)).unwrap();
        assert_eq!(p.exitcode(), Some(0));
    }

    // a child that dies before reading its payload is an error, not a hang
    mp::set_executable("/bin/true");
    let ctx = mp::get_context(Some(StartMethod::Spawn)).unwrap();
    let p = ctx.process(noop, ());
    let err = p.start().expect_err("/bin/true never reads its payload");
    assert!(
        err.to_string().contains("before reading its payload"),
        "{err}"
    );
    mp::set_executable(std::env::current_exe().unwrap());
    let p = ctx.process(noop, ());
    p.start().unwrap();
    p.join_timeout(Duration::from_secs(30)).unwrap();
    assert_eq!(p.exitcode(), Some(0));
}
