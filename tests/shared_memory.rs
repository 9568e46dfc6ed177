//! Named shared memory, ShareableList (byte-compatible with CPython's) and the
//! resource tracker, across real processes under every start method.
mp::test_support!();

use mp::shared_memory::{Item, ShareableList, SharedMemory};
use mp::{get_all_start_methods, get_context, Error};
use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const JOIN: Duration = Duration::from_secs(30);

/// Unlinks the named segments when dropped, so a failing test leaves nothing behind.
struct Cleanup(Vec<String>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for n in &self.0 {
            if let Ok(s) = SharedMemory::attach(n) {
                let _ = s.unlink();
            }
        }
    }
}

fn shm_exists(name: &str) -> bool {
    std::path::Path::new("/dev/shm").join(name).exists()
}

/// Runs `cmd`, failing the test if it takes longer than `secs`; waits for EOF on its
/// pipes, i.e. for every process that inherited them (a tracker included).
fn run_with_timeout(mut cmd: Command, secs: u64) -> Output {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = cmd.spawn().expect("spawn");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(out) => out.expect("wait"),
        Err(_) => {
            // SAFETY-free: plain kill of the process we started
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            panic!("{cmd:?} did not finish within {secs} s");
        }
    }
}

// ---------------------------------------------------------------------------------
// SharedMemory

#[test]
fn create_attach_and_errors() {
    let mut a = SharedMemory::create(None, 10).unwrap();
    let _c = Cleanup(vec![a.name().to_string()]);
    let n = a.name();
    assert!(n.starts_with("psm_") && n.len() == 12, "{n}");
    assert!(n[4..].chars().all(|c| c.is_ascii_hexdigit()));
    assert!(shm_exists(n));
    assert_eq!(a.size(), 10);
    assert_eq!(a.buf(), &[0u8; 10]);
    a.buf_mut()[..4].copy_from_slice(&[22, 33, 44, 55]);
    a.buf_mut()[4] = 100;

    let mut b = SharedMemory::attach(a.name()).unwrap();
    assert_eq!(b.size(), 10);
    assert_eq!(&b.buf()[..5], &[22, 33, 44, 55, 100]);
    b.buf_mut()[..5].copy_from_slice(b"howdy");
    assert_eq!(&a.buf()[..5], b"howdy");
    let c = a.clone();
    assert_eq!(&c.buf()[..5], b"howdy");
    assert_eq!(
        format!("{a:?}"),
        format!("SharedMemory('{}', size=10)", a.name())
    );

    b.close().unwrap();
    assert!(b.closed() && b.buf().is_empty() && b.buf_mut().is_empty());
    assert_eq!(
        &a.buf()[..5],
        b"howdy",
        "closing one handle leaves the others"
    );

    // a given name, taken twice
    let name = format!("mp_test_{}", std::process::id());
    let _c2 = Cleanup(vec![name.clone()]);
    let named = SharedMemory::create(Some(&name), 4096).unwrap();
    assert_eq!(named.name(), name);
    match SharedMemory::create(Some(&name), 10) {
        Err(Error::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists),
        other => panic!("{other:?}"),
    }
    named.unlink().unwrap();
    assert!(!shm_exists(&name));
    match named.unlink() {
        Err(Error::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::NotFound),
        other => panic!("{other:?}"),
    }
    match SharedMemory::attach(&name) {
        Err(Error::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::NotFound),
        other => panic!("{other:?}"),
    }
    match SharedMemory::create(None, 0) {
        Err(Error::InvalidState(m)) => assert!(m.contains("'size' must be a positive"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(SharedMemory::create(Some("bad/name"), 10).is_err());

    a.unlink().unwrap();
    assert!(!shm_exists(a.name()));
    // the mapping outlives the name
    assert_eq!(&c.buf()[..5], b"howdy");
}

#[mp::task]
fn write_through(mut shm: SharedMemory, data: Vec<u8>) -> usize {
    shm.buf_mut()[..data.len()].copy_from_slice(&data);
    shm.size()
}

#[mp::task]
fn attach_and_write(name: String, at: usize, byte: u8) {
    let mut shm = SharedMemory::attach(&name).expect("attach");
    shm.buf_mut()[at] = byte;
    shm.close().expect("close");
}

#[test]
fn children_write_under_every_method() {
    for m in get_all_start_methods() {
        let ctx = get_context(Some(m)).unwrap();
        let shm = SharedMemory::create(None, 64).unwrap();
        let _c = Cleanup(vec![shm.name().to_string()]);
        let p = ctx.process(write_through, (shm.clone(), b"from child".to_vec()));
        p.start().unwrap();
        p.join_timeout(JOIN).unwrap();
        assert_eq!(p.exitcode(), Some(0), "{m}");
        let p = ctx.process(attach_and_write, (shm.name().to_string(), 63usize, 7u8));
        p.start().unwrap();
        p.join_timeout(JOIN).unwrap();
        assert_eq!(p.exitcode(), Some(0), "{m}");
        assert_eq!(&shm.buf()[..10], b"from child", "{m}");
        assert_eq!(shm.buf()[63], 7, "{m}");
        shm.unlink().unwrap();
    }
    // the task's value comes back too
    let shm = SharedMemory::create(None, 8).unwrap();
    let _c = Cleanup(vec![shm.name().to_string()]);
    let h = mp::spawn(write_through, (shm.clone(), vec![1, 2])).unwrap();
    assert_eq!(h.join().unwrap(), 8);
    assert_eq!(&shm.buf()[..2], &[1, 2]);
    shm.unlink().unwrap();
}

#[test]
fn deserializing_a_missing_segment_is_an_error() {
    let shm = SharedMemory::create(None, 8).unwrap();
    let bytes = mp::codec::encode(&shm).unwrap();
    shm.unlink().unwrap();
    assert!(mp::codec::decode::<SharedMemory>(&bytes).is_err());
}

// ---------------------------------------------------------------------------------
// ShareableList

fn docs_items() -> Vec<Item> {
    vec![
        Item::from("howdy"),
        Item::from(b"HoWdY".to_vec()),
        Item::Float(-273.154),
        Item::Int(100),
        Item::None,
        Item::Bool(true),
        Item::Int(42),
    ]
}

#[test]
fn shareable_list_docs_example() {
    let a = ShareableList::new(&docs_items()).unwrap();
    let _c = Cleanup(vec![a.shm().name().to_string()]);
    assert_eq!(a.format(), "8s8sdqxxxxxx?xxxxxxxx?q");
    let kinds: Vec<String> = a.items().unwrap().iter().map(|i| format!("{i}")).collect();
    assert_eq!(
        kinds,
        ["'howdy'", "b'HoWdY'", "-273.154", "100", "None", "True", "42"]
    );
    assert_eq!(a.get(2).unwrap(), Item::Float(-273.154));
    a.set(2, Item::Float(-78.5)).unwrap();
    assert_eq!(a.get(2).unwrap(), Item::Float(-78.5));
    a.set(2, Item::from("dry ice")).unwrap();
    assert_eq!(a.get(2).unwrap(), Item::from("dry ice"));
    assert_eq!(a.format(), "8s8s8sqxxxxxx?xxxxxxxx?q");
    match a.set(
        2,
        Item::from("larger than previously allocated storage space"),
    ) {
        Err(Error::InvalidState(m)) => assert!(m.contains("exceeds available storage"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(a.get(2).unwrap(), Item::from("dry ice"));
    assert_eq!(a.len(), 7);
    assert_eq!(a.index(&Item::Int(42)).unwrap(), 6);
    assert_eq!(a.count(&Item::from(b"howdy".to_vec())).unwrap(), 0);
    assert_eq!(a.count(&Item::from(b"HoWdY".to_vec())).unwrap(), 1);
    assert!(matches!(
        a.index(&Item::from("nope")),
        Err(Error::InvalidState(_))
    ));
    assert!(matches!(a.get(7), Err(Error::InvalidState(_))));
    // Python's ==: True == 1
    assert_eq!(a.count(&Item::Int(1)).unwrap(), 1);
    let dbg = format!("{a:?}");
    assert!(
        dbg.starts_with(
            "ShareableList(['howdy', b'HoWdY', 'dry ice', 100, None, True, 42], name='psm_"
        ),
        "{dbg}"
    );
    a.shm().close().unwrap();
    assert!(a.get(0).is_err(), "use after close is an error");
    a.shm().unlink().unwrap();
}

#[test]
fn typed_lists() {
    let b = ShareableList::new(&[0i64, 1, 2, 3, 4]).unwrap();
    let _c = Cleanup(vec![b.shm().name().to_string()]);
    let c: ShareableList<i64> = ShareableList::attach(b.shm().name()).unwrap();
    assert_eq!(c.to_vec().unwrap(), [0, 1, 2, 3, 4]);
    c.set(4, -999).unwrap();
    assert_eq!(b.get(4).unwrap(), -999);
    let d = b.clone();
    d.set(0, -1).unwrap();
    assert_eq!(c.get(0).unwrap(), -1);

    let s = ShareableList::new(&["a".to_string(), "".to_string(), "12345678".to_string()]).unwrap();
    let _c2 = Cleanup(vec![s.shm().name().to_string()]);
    assert_eq!(s.format(), "8s8s16s");
    s.set(1, "xyzxyzxy".into()).unwrap();
    assert!(s.set(0, "123456789".into()).is_err());
    s.set(2, "short".into()).unwrap();
    assert_eq!(s.to_vec().unwrap(), ["a", "xyzxyzxy", "short"]);
    assert_eq!(s.index(&"short".to_string()).unwrap(), 2);

    let o = ShareableList::new(&[Some(1.5f64), None]).unwrap();
    let _c3 = Cleanup(vec![o.shm().name().to_string()]);
    assert_eq!(o.to_vec().unwrap(), [Some(1.5), None]);
    o.set(1, Some(2.5)).unwrap();
    assert_eq!(o.get(1).unwrap(), Some(2.5));
    // reading an item as the wrong type is an error, not a panic
    let f: ShareableList<bool> = ShareableList::attach(o.shm().name()).unwrap();
    assert!(matches!(f.get(0), Err(Error::Codec(_))));

    let empty = ShareableList::<i64>::new(&[]).unwrap();
    let _c4 = Cleanup(vec![empty.shm().name().to_string()]);
    assert_eq!(empty.len(), 0);
    assert_eq!(empty.format(), "");
    b.shm().unlink().unwrap();
    s.shm().unlink().unwrap();
    o.shm().unlink().unwrap();
    empty.shm().unlink().unwrap();
}

#[mp::task]
fn bump_list(sl: ShareableList<Item>) -> String {
    let n = match sl.get(0) {
        Ok(Item::Int(n)) => n,
        other => panic!("{other:?}"),
    };
    sl.set(0, Item::Int(n + 1)).expect("set");
    sl.set(1, Item::from("child")).expect("set");
    format!("{sl:?}")
}

#[test]
fn shareable_list_travels_to_children() {
    for m in get_all_start_methods() {
        let ctx = get_context(Some(m)).unwrap();
        let sl = ShareableList::new(&[Item::Int(41), Item::from("parent")]).unwrap();
        let _c = Cleanup(vec![sl.shm().name().to_string()]);
        let p = ctx.process(bump_list, (sl.clone(),));
        p.start().unwrap();
        p.join_timeout(JOIN).unwrap();
        assert_eq!(p.exitcode(), Some(0), "{m}");
        assert_eq!(
            sl.items().unwrap(),
            [Item::Int(42), Item::from("child")],
            "{m}"
        );
        sl.shm().unlink().unwrap();
    }
}

fn python(script: &str) -> Output {
    let mut cmd = Command::new("python3");
    cmd.arg("-c").arg(script);
    run_with_timeout(cmd, 30)
}

#[test]
fn python_reads_and_writes_our_list() {
    let sl = ShareableList::new(&docs_items()).unwrap();
    let _c = Cleanup(vec![sl.shm().name().to_string()]);
    let script = format!(
        r#"
from multiprocessing import shared_memory, resource_tracker
sl = shared_memory.ShareableList(name={name:?})
resource_tracker.unregister(sl.shm._name, "shared_memory")  # 3.11 tracks attaches
print(list(sl))
print(sl.format)
sl[3] = 'py'
sl[6] = 2.5
sl[4] = False
sl.shm.close()
"#,
        name = sl.shm().name()
    );
    let out = python(&script);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines = stdout.lines();
    assert_eq!(
        lines.next(),
        Some("['howdy', b'HoWdY', -273.154, 100, None, True, 42]")
    );
    assert_eq!(lines.next(), Some("8s8sdqxxxxxx?xxxxxxxx?q"));
    assert_eq!(sl.get(3).unwrap(), Item::from("py"));
    assert_eq!(sl.get(6).unwrap(), Item::Float(2.5));
    assert_eq!(sl.get(4).unwrap(), Item::Bool(false));
    assert_eq!(sl.format(), "8s8sd8sxxxxxxx?xxxxxxx?d");
    sl.shm().unlink().unwrap();
}

#[test]
fn we_read_a_python_list() {
    let script = r#"
from multiprocessing import shared_memory, resource_tracker
sl = shared_memory.ShareableList(['αβ', b'\x00x', 3.25, -7, None, False, 'x' * 20])
resource_tracker.unregister(sl.shm._name, "shared_memory")  # we unlink it
print(sl.shm.name)
print(sl.format)
sl.shm.close()
"#;
    let out = python(script);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines = stdout.lines();
    let name = lines.next().expect("name").to_string();
    let _c = Cleanup(vec![name.clone()]);
    let fmt = lines.next().expect("format");
    let sl: ShareableList<Item> = ShareableList::attach(&name).unwrap();
    assert_eq!(sl.format(), fmt);
    // CPython sizes a str slot by characters, not bytes: 'αβ' (4 bytes) fits in 8
    assert_eq!(
        sl.items().unwrap(),
        [
            Item::from("αβ"),
            Item::from(b"\x00x".to_vec()),
            Item::Float(3.25),
            Item::Int(-7),
            Item::None,
            Item::Bool(false),
            Item::from("x".repeat(20)),
        ]
    );
    sl.set(6, Item::from("rust")).unwrap();
    let check = format!(
        r#"
from multiprocessing import shared_memory, resource_tracker
sl = shared_memory.ShareableList(name={name:?})
resource_tracker.unregister(sl.shm._name, "shared_memory")
print(sl[6])
sl.shm.close()
"#
    );
    let out = python(&check);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "rust");
    sl.shm().unlink().unwrap();
}

// ---------------------------------------------------------------------------------
// The resource tracker

#[mp::task]
fn leak_segment(how: String) {
    let shm = SharedMemory::create(None, 4096).expect("create");
    println!("LEAKED {}", shm.name());
    let _ = std::io::stdout().flush();
    match how.as_str() {
        "kill" => {
            // SAFETY: a plain syscall on ourselves
            unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
        }
        _ => std::process::exit(3),
    }
}

#[mp::task]
fn create_for_parent() -> String {
    let shm = SharedMemory::create(None, 16).expect("create");
    shm.name().to_string() // left to the parent, who unlinks it
}

#[mp::task]
fn create_and_unlink() {
    let shm = SharedMemory::create(None, 16).expect("create");
    shm.unlink().expect("unlink");
}

const INNER: &str = "MP_TEST_SHM_TRACKER_INNER";

/// The inner program (this test binary run again): leaks segments from children
/// under every start method and from itself, then exits.
fn inner_program() {
    for m in get_all_start_methods() {
        let ctx = get_context(Some(m)).unwrap();
        for how in ["kill", "exit"] {
            let p = ctx.process(leak_segment, (how.to_string(),));
            p.start().unwrap();
            p.join_timeout(JOIN).unwrap();
            let want = if how == "kill" { -9 } else { 3 };
            assert_eq!(p.exitcode(), Some(want), "{m} {how}");
        }
        let p = ctx.process(create_and_unlink, ());
        p.start().unwrap();
        p.join_timeout(JOIN).unwrap();
        assert_eq!(p.exitcode(), Some(0));
        // a segment a child made and left to us survives the child
        let name = mp::spawn(create_for_parent, ()).unwrap().join().unwrap();
        let shm = SharedMemory::attach(&name).expect("the child's segment outlived it");
        shm.unlink().unwrap();
        println!("SURVIVED {m}");
    }
    let mine = SharedMemory::create(None, 64).unwrap();
    println!("LEAKED {}", mine.name());
    let _ = std::io::stdout().flush();
    std::mem::forget(mine);
}

#[test]
fn tracker_unlinks_what_killed_children_leave() {
    if std::env::var_os(INNER).is_some() {
        inner_program();
        return;
    }
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "tracker_unlinks_what_killed_children_leave",
        "--exact",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(INNER, "1");
    let out = run_with_timeout(cmd, 60);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let leaked: Vec<String> = stdout
        .lines()
        .filter_map(|l| l.split("LEAKED ").nth(1))
        .map(str::to_string)
        .collect();
    let _c = Cleanup(leaked.clone());
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let methods = get_all_start_methods().len();
    assert_eq!(leaked.len(), 2 * methods + 1, "{stdout}");
    assert_eq!(stdout.matches("SURVIVED").count(), methods, "{stdout}");
    // run_with_timeout waited for EOF on the pipes, which the tracker holds: it is done
    for n in &leaked {
        assert!(
            !shm_exists(n),
            "/dev/shm/{n} outlived the program\n{stderr}"
        );
    }
    assert!(
        stderr.contains(&format!(
            "resource_tracker: There appear to be {} leaked shared_memory objects to clean up at shutdown",
            leaked.len()
        )),
        "{stderr}"
    );
}

// ---------------------------------------------------------------------------------
// Issue 9 item 10: a layout another process wrote is validated, never trusted.

/// Where the parts of a ShareableList lie in its segment (CPython's layout): the
/// length, `len + 1` slot offsets, the data, the formats (8 bytes each), the codes.
struct Layout {
    n: usize,
    offsets: Vec<usize>,
    data: usize,
    formats: usize,
    codes: usize,
}

fn q(buf: &[u8], at: usize) -> i64 {
    i64::from_ne_bytes(buf[at..at + 8].try_into().unwrap())
}

fn put_q(buf: &mut [u8], at: usize, v: i64) {
    buf[at..at + 8].copy_from_slice(&v.to_ne_bytes());
}

fn layout(buf: &[u8]) -> Layout {
    let n = q(buf, 0) as usize;
    let offsets: Vec<usize> = (0..=n).map(|i| q(buf, 8 + 8 * i) as usize).collect();
    let data = (n + 2) * 8;
    let formats = data + offsets[n];
    Layout {
        n,
        data,
        formats,
        codes: formats + 8 * n,
        offsets,
    }
}

/// Every operation on a list attached to `name`; none may panic. Returns whether
/// attach failed and, if not, the results of `get(i)` for each item.
fn exercise(name: &str) -> std::result::Result<Vec<mp::Result<Item>>, Error> {
    let r = std::panic::catch_unwind(|| {
        let sl = ShareableList::<Item>::attach(name)?;
        let gets: Vec<_> = (0..sl.len()).map(|i| sl.get(i)).collect();
        let _ = sl.items();
        let _ = sl.format();
        let _ = format!("{sl:?}");
        let _ = sl.count(&Item::Int(5));
        let _ = sl.index(&Item::Int(5));
        for i in 0..sl.len() {
            let _ = sl.set(i, Item::from("a str of some length"));
            let _ = sl.set(i, Item::from("z"));
            let _ = sl.set(i, Item::Int(1));
            let _ = sl.get(i);
        }
        Ok(gets)
    });
    r.unwrap_or_else(|_| panic!("a corrupt ShareableList made a method panic"))
}

fn corrupted(f: impl FnOnce(&mut [u8], &Layout)) -> (String, Cleanup) {
    let sl =
        ShareableList::new(&[Item::from("abcdefghij"), Item::Int(5), Item::from("xy")]).unwrap();
    let name = sl.shm().name().to_string();
    assert_eq!(sl.format(), "16sq8s");
    let mut raw = SharedMemory::attach(&name).unwrap();
    let l = layout(raw.buf());
    assert_eq!((l.n, &l.offsets[..]), (3, &[0, 16, 24, 32][..]));
    f(raw.buf_mut(), &l);
    (name.clone(), Cleanup(vec![name]))
}

#[test]
fn corrupt_shareable_list_layouts_are_errors_never_panics() {
    // layouts that attach must refuse
    type Corruption = fn(&mut [u8], &Layout);
    let refused: [(&str, Corruption); 6] = [
        ("decreasing offsets", |b, _| put_q(b, 8 + 8 * 2, 8)),
        ("offsets past the formats", |b, _| {
            put_q(b, 8 + 8 * 3, 1 << 20)
        }),
        ("negative offset", |b, _| put_q(b, 16, -8)),
        ("huge item count", |b, _| put_q(b, 0, i64::MAX)),
        ("negative item count", |b, _| put_q(b, 0, -1)),
        ("item count past the offsets", |b, _| put_q(b, 0, 12)),
    ];
    for (what, f) in refused {
        let (name, _c) = corrupted(f);
        assert!(
            matches!(exercise(&name), Err(Error::Codec(_))),
            "{what}: attach accepted it"
        );
    }
    // layouts that attach, with items whose reads must fail
    let bad_items: [(&str, usize, Corruption); 8] = [
        ("format longer than the slot", 0, |b, l| {
            b[l.formats..l.formats + 8].copy_from_slice(b"9999999s")
        }),
        ("unknown format", 1, |b, l| {
            b[l.formats + 8..l.formats + 16].copy_from_slice(b"zzzzzzzz")
        }),
        ("format without a count", 2, |b, l| {
            b[l.formats + 16..l.formats + 24].copy_from_slice(b"s\0\0\0\0\0\0\0")
        }),
        ("format not UTF-8", 0, |b, l| {
            b[l.formats..l.formats + 8].copy_from_slice(&[0xff; 8])
        }),
        ("type code out of range", 1, |b, l| b[l.codes + 1] = 9),
        ("str code on an int", 1, |b, l| b[l.codes + 1] = 1),
        ("bytes code on a float format", 1, |b, l| {
            b[l.formats + 8] = b'd';
            b[l.codes + 1] = 2
        }),
        ("str that is not UTF-8", 0, |b, l| b[l.data] = 0xc3),
    ];
    for (what, i, f) in bad_items {
        let (name, _c) = corrupted(f);
        let gets = exercise(&name).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(
            matches!(gets[i], Err(Error::Codec(_))),
            "{what}: item {i} read as {:?}",
            gets[i]
        );
    }
}

#[test]
fn an_oversized_slot_cannot_overflow_the_format_field() {
    // a (sparse) segment whose only slot is 100 MB: its "100000000s" format does not
    // fit CPython's 8-byte format field, so a str written there is refused
    let slot: usize = 100_000_000;
    let mut raw = SharedMemory::create(None, 3 * 8 + slot + 9).unwrap();
    let _c = Cleanup(vec![raw.name().to_string()]);
    let b = raw.buf_mut();
    put_q(b, 0, 1);
    put_q(b, 8, 0);
    put_q(b, 16, slot as i64);
    let formats = 24 + slot;
    b[formats..formats + 8].copy_from_slice(b"??\0\0\0\0\0\0");
    let gets = exercise(raw.name()).unwrap();
    assert!(matches!(gets[0], Err(Error::Codec(_))));
    let sl = ShareableList::<Item>::attach(raw.name()).unwrap();
    assert!(sl.set(0, Item::from("hi")).is_err());
    sl.set(0, Item::Int(3)).unwrap();
    assert_eq!(sl.get(0).unwrap(), Item::Int(3));
    raw.unlink().unwrap();
}

#[mp::task]
fn scramble_offsets(name: String) {
    let mut raw = SharedMemory::attach(&name).unwrap();
    let b = raw.buf_mut();
    put_q(b, 8 + 8 * 2, 0);
    put_q(b, 8 + 8 * 3, 8);
}

#[test]
fn a_child_corrupts_a_list_every_start_method() {
    for m in get_all_start_methods() {
        let ctx = get_context(Some(m)).unwrap();
        let sl = ShareableList::new(&[Item::from("abcdefghij"), Item::Int(5), Item::from("xy")])
            .unwrap();
        let name = sl.shm().name().to_string();
        let _c = Cleanup(vec![name.clone()]);
        let p = ctx.process(scramble_offsets, (name.clone(),));
        p.start().unwrap();
        p.join_timeout(JOIN).unwrap();
        assert_eq!(p.exitcode(), Some(0), "{m}");
        assert!(matches!(exercise(&name), Err(Error::Codec(_))), "{m}");
        // the handle made before the corruption keeps its own validated layout
        assert_eq!(sl.get(1).unwrap(), Item::Int(5));
        sl.shm().unlink().unwrap();
    }
}

#[test]
fn attach_does_not_follow_a_symlink() {
    // a name another process sent may be a symlink planted in /dev/shm: attach
    // refuses it (glibc's shm_open opens with O_NOFOLLOW; so do we)
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("not-shared-memory");
    std::fs::write(&target, [7u8; 64]).unwrap();
    let name = format!("mp_symlink_test_{}", std::process::id());
    let link = std::path::Path::new("/dev/shm").join(&name);
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let r = SharedMemory::attach(&name);
    let via_list = ShareableList::<Item>::attach(&name);
    std::fs::remove_file(&link).unwrap();
    assert!(r.is_err(), "attached through a symlink: {r:?}");
    assert!(via_list.is_err());
    assert_eq!(std::fs::read(&target).unwrap(), [7u8; 64]);
}
