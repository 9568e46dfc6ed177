mp::test_support!();
use mp::*;
use std::time::Duration;

#[mp::task]
fn add(a: u32, b: u32) -> u32 {
    a + b
}

#[mp::task]
fn boom() {
    panic!("boom!")
}

#[test]
fn smoke() {
    for m in get_all_start_methods() {
        let ctx = get_context(Some(m)).unwrap();
        let p = ctx.process(add, (1, 2));
        p.start().unwrap();
        p.join_timeout(Duration::from_secs(20)).unwrap();
        assert_eq!(p.exitcode(), Some(0), "{m}");
        let p = ctx.process(boom, ());
        p.start().unwrap();
        p.join_timeout(Duration::from_secs(20)).unwrap();
        assert_eq!(p.exitcode(), Some(1), "{m}");
        eprintln!("{p:?}");
    }
    let h = mp::spawn(add, (3, 4)).unwrap();
    assert_eq!(h.join().unwrap(), 7);
}
