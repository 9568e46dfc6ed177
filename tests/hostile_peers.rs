//! Hostile or broken peers on a `Connection` (issue 13 item 2): a lying length header
//! (up to 2^64 bytes), a truncated frame, garbage where a value or a handshake was
//! expected. Each gives an `Err`, never a panic, and memory stays bounded by what the
//! peer really sent: a counting global allocator records the largest single
//! allocation, and the tests assert it never approaches the claimed size. A frame cut
//! short is never mistaken for a clean end of file. The same allocator shows that a
//! long message is read straight into the caller's buffer.
mp::test_support!();

mod common;
#[allow(unused_imports)]
use common::*;

use mp::{Client, Connection, Error, Listener};
use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The system allocator, recording the largest single request.
struct Counting;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only records sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LARGEST.fetch_max(l.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        LARGEST.fetch_max(l.size(), Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LARGEST.fetch_max(new, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// The tests share the allocation record: run them one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// Runs `f` and returns the largest single allocation it made.
fn largest_allocation<R>(f: impl FnOnce() -> R) -> (R, usize) {
    LARGEST.store(0, Ordering::Relaxed);
    let r = f();
    (r, LARGEST.load(Ordering::Relaxed))
}

const MIB: usize = 1 << 20;
/// What a read may allocate beyond the bytes really sent (one 16 MiB read chunk and
/// the buffer's doubling).
const BOUND: usize = 64 * MIB;

/// Our end, and the hostile peer's raw socket.
fn pair() -> (Connection, UnixStream) {
    let (a, b) = UnixStream::pair().unwrap();
    (Connection::from_unix_stream(a), b)
}

/// The hostile peer writes `bytes` and then `extra` zero bytes, then hangs up.
fn send_then_close(mut peer: UnixStream, bytes: Vec<u8>, extra: usize) {
    // allocated here, before the caller starts measuring
    let zeros = vec![0u8; MIB];
    std::thread::spawn(move || {
        let _ = peer.write_all(&bytes);
        let mut left = extra;
        while left > 0 {
            let n = left.min(MIB);
            if peer.write_all(&zeros[..n]).is_err() {
                break;
            }
            left -= n;
        }
    });
}

/// A peer that hung up in the middle of a frame: an `UnexpectedEof` I/O error, not the
/// clean `Eof` of a peer that closed between messages.
fn cut_short<T: std::fmt::Debug>(r: &mp::Result<T>) -> bool {
    matches!(r, Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof)
}

fn long_header(len: u64) -> Vec<u8> {
    let mut h = (-1i32).to_be_bytes().to_vec();
    h.extend_from_slice(&len.to_be_bytes());
    h
}

#[test]
fn lying_length_headers_allocate_only_what_arrives() {
    let _s = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let headers = [
        ("2 GiB - 1 (4-byte form)", i32::MAX.to_be_bytes().to_vec()),
        ("4 GiB", long_header(4 << 30)),
        ("2^64 - 1", long_header(u64::MAX)),
    ];
    for (what, h) in headers {
        for extra in [0, 20 * MIB] {
            // recv_bytes, recv::<T> and recv_bytes_into: each an error at the hang-up
            for how in 0..3 {
                let (c, peer) = pair();
                send_then_close(peer, h.clone(), extra);
                assert!(c.poll(Some(JOIN_TIMEOUT)).unwrap());
                let (r, peak) = largest_allocation(|| match how {
                    0 => c.recv_bytes().map(|_| ()),
                    1 => c.recv::<Vec<u8>>().map(|_| ()),
                    _ => c.recv_bytes_into(&mut [0u8; 64]).map(|_| ()),
                });
                assert!(cut_short(&r), "{what} +{extra} ({how}): {r:?}");
                assert!(
                    peak <= extra + BOUND,
                    "{what} +{extra} ({how}): allocated {peak} bytes at once"
                );
                // the stream is left mid-message: later reads are refused, not garbage
                assert!(c.recv_bytes().is_err());
            }
            // with a maximum: refused before any body is read
            let (c, peer) = pair();
            send_then_close(peer, h.clone(), extra);
            let (r, peak) = largest_allocation(|| c.recv_bytes_max(1 << 10));
            assert!(
                matches!(r, Err(Error::MessageTooLarge { .. })),
                "{what}: {r:?}"
            );
            assert!(peak < MIB, "{what}: allocated {peak} bytes");
        }
    }
}

/// The result of the `how`-th kind of receive (`recv_bytes`, `recv`, `recv_bytes_into`
/// a buffer that fits a 1 MiB claim, and one that does not) from a peer that wrote
/// `bytes` and hung up, and our end.
fn receive_from(bytes: &[u8], how: u8) -> (mp::Result<()>, Connection) {
    let (c, peer) = pair();
    send_then_close(peer, bytes.to_vec(), 0);
    assert!(c.poll(Some(JOIN_TIMEOUT)).unwrap());
    let r = match how {
        0 => c.recv_bytes().map(drop),
        1 => c.recv::<Vec<u8>>().map(drop),
        2 => c.recv_bytes_into(&mut vec![0u8; 2 * MIB]).map(drop),
        _ => c.recv_bytes_into(&mut [0u8; 16]).map(drop),
    };
    (r, c)
}

#[test]
fn bad_headers_are_codec_errors() {
    let _s = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    for (what, bytes) in [
        ("negative length", (-5i32).to_be_bytes()),
        ("i32::MIN", i32::MIN.to_be_bytes()),
    ] {
        for how in 0..4 {
            let (r, c) = receive_from(&bytes, how);
            assert!(matches!(r, Err(Error::Codec(_))), "{what} ({how}): {r:?}");
            // the stream is garbage from here: later reads are refused
            assert!(matches!(c.recv_bytes(), Err(Error::InvalidState(_))));
        }
    }
}

/// One frame holding `body`.
fn frame(body: &[u8]) -> Vec<u8> {
    let mut v = (body.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(body);
    v
}

#[test]
fn garbage_values_are_codec_errors_with_bounded_memory() {
    let _s = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    // postcard varints claiming 2^63 elements, strings that are not UTF-8, a handle
    // with no descriptor, an enum tag out of range
    let huge = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f];
    let (c, mut peer) = pair();
    for body in [
        &huge[..],
        &huge[..],
        &[3, 0xff, 0xfe, 0xfd],
        &[0, 0],
        &[9],
        &[],
    ] {
        peer.write_all(&frame(body)).unwrap();
    }
    let (r, peak) = largest_allocation(|| c.recv::<Vec<u64>>());
    assert!(matches!(r, Err(Error::Codec(_))), "{r:?}");
    assert!(peak < BOUND, "allocated {peak}");
    let (r, peak) = largest_allocation(|| c.recv::<String>());
    assert!(matches!(r, Err(Error::Codec(_))), "{r:?}");
    assert!(peak < BOUND, "allocated {peak}");
    assert!(matches!(c.recv::<String>(), Err(Error::Codec(_))));
    assert!(matches!(c.recv::<Connection>(), Err(Error::Codec(_))));
    assert!(matches!(c.recv::<Option<u8>>(), Err(Error::Codec(_))));
    assert!(matches!(c.recv::<u32>(), Err(Error::Codec(_))));
    // a codec error consumes one message and leaves the connection usable
    peer.write_all(&frame(&[42])).unwrap();
    assert_eq!(c.recv::<u8>().unwrap(), 42);
}

#[test]
fn hostile_handshakes_fail_without_allocating_the_claim() {
    let _s = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let key = b"key".to_vec();
    // a "server" whose challenge claims 4 GiB: the client refuses it
    let (c, peer) = pair();
    send_then_close(peer, long_header(4 << 30), 0);
    let (r, peak) = largest_allocation(|| mp::connection::answer_challenge(&c, &key));
    assert!(matches!(r, Err(Error::Authentication(_))), "{r:?}");
    assert!(peak < MIB, "allocated {peak}");
    // a "client" answering the challenge with a 4 GiB claim, then garbage: accept
    // fails that one client (as CPython) and the listener serves the next
    let l = Arc::new(Listener::bind(None, 4, Some(&key)).unwrap());
    l.set_handshake_timeout(Some(Duration::from_secs(5)));
    let mut evil = UnixStream::connect(match l.address() {
        mp::Address::Unix(p) => p,
        other => panic!("{other:?}"),
    })
    .unwrap();
    evil.write_all(&long_header(4 << 30)).unwrap();
    let (r, peak) = largest_allocation(|| l.accept());
    assert!(matches!(r, Err(Error::Authentication(_))), "{r:?}");
    assert!(peak < MIB, "allocated {peak}");
    let mut garbage = UnixStream::connect(match l.address() {
        mp::Address::Unix(p) => p,
        other => panic!("{other:?}"),
    })
    .unwrap();
    garbage.write_all(&frame(b"{sha256}not a digest")).unwrap();
    assert!(matches!(l.accept(), Err(Error::Authentication(_))));
    let address = l.address();
    let k2 = key.clone();
    let good = std::thread::spawn(move || Client::connect(&address, Some(&k2)).map(|_| ()));
    assert!(l.accept().is_ok());
    good.join().unwrap().unwrap();
    drop((evil, garbage));
}

#[mp::task]
fn write_raw(conn: Connection, bytes: Vec<u8>) {
    let fd = conn.fileno().unwrap();
    let mut done = 0;
    while done < bytes.len() {
        // SAFETY: `fd` is the open descriptor `conn` owns for the whole loop, and
        // `bytes[done..]` is a valid buffer of that length.
        let n = unsafe { libc::write(fd, bytes[done..].as_ptr().cast(), bytes.len() - done) };
        assert!(n > 0, "write failed");
        done += n as usize;
    }
}

#[test]
fn a_hostile_child_every_start_method() {
    let _s = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    for_each_method(|ctx| {
        let (ours, theirs) = ctx.pipe(true).unwrap();
        let p = ctx.process(write_raw, (theirs, long_header(u64::MAX)));
        p.start().unwrap();
        join_ok(&p);
        assert!(ours.poll(Some(JOIN_TIMEOUT)).unwrap());
        let (r, peak) = largest_allocation(|| ours.recv_bytes());
        assert!(cut_short(&r), "{r:?}");
        assert!(peak <= BOUND, "allocated {peak}");
    });
}

/// A frame header announcing `len` bytes, then `sent` of them.
fn partial_frame(len: usize, sent: usize) -> Vec<u8> {
    let mut v = (len as u32).to_be_bytes().to_vec();
    v.resize(4 + sent, 7);
    v
}

#[test]
fn a_peer_dying_mid_message_is_not_a_clean_eof() {
    let _s = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let cases: [(&str, Vec<u8>); 7] = [
        ("1 MiB frame, 100 KiB sent", partial_frame(MIB, 100 << 10)),
        ("1 MiB frame, header only", partial_frame(MIB, 0)),
        (
            "100 KiB frame, 64 KiB - 1 sent",
            partial_frame(100 << 10, (64 << 10) - 1),
        ),
        ("100-byte frame, 10 sent", partial_frame(100, 10)),
        ("100-byte frame, header only", partial_frame(100, 0)),
        ("two header bytes", vec![0, 0]),
        (
            "long header, 7 of 12 bytes",
            long_header(1 << 40)[..7].to_vec(),
        ),
    ];
    for (what, bytes) in cases {
        for how in 0..4 {
            let (r, c) = receive_from(&bytes, how);
            assert!(cut_short(&r), "{what} ({how}): {r:?}");
            if what.starts_with("1 MiB frame, 100 KiB") {
                // how much of what came: the whole body's count, whichever way it is read
                let msg = r.as_ref().unwrap_err().to_string();
                assert!(msg.contains("102400 of 1048576 bytes"), "{msg}");
            }
            // the stream is left mid-message: later reads are refused, never a
            // clean Eof either
            let again = c.recv_bytes();
            assert!(
                matches!(again, Err(Error::InvalidState(_))),
                "{what} ({how}), again: {again:?}"
            );
        }
    }
    // whereas a peer that closes between messages is a clean Eof, again and again
    let (c, peer) = pair();
    let mut whole = partial_frame(MIB, MIB);
    whole.extend_from_slice(&partial_frame(3, 3));
    send_then_close(peer, whole, 0);
    assert_eq!(c.recv_bytes().unwrap().len(), MIB);
    assert_eq!(c.recv_bytes().unwrap(), [7; 3]);
    assert!(matches!(c.recv_bytes(), Err(Error::Eof)));
    assert!(matches!(c.recv_bytes_into(&mut [0u8; 4]), Err(Error::Eof)));
}

#[test]
fn a_child_dying_mid_message_is_not_a_clean_eof_every_start_method() {
    let _s = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    for_each_method(|ctx| {
        for (len, sent) in [(MIB, 100 << 10), (100, 10)] {
            let (ours, theirs) = ctx.pipe(true).unwrap();
            let p = ctx.process(write_raw, (theirs, partial_frame(len, sent)));
            p.start().unwrap();
            join_ok(&p);
            assert!(ours.poll(Some(JOIN_TIMEOUT)).unwrap());
            let r = ours.recv_bytes();
            assert!(cut_short(&r), "{len} bytes, {sent} sent: {r:?}");
        }
    });
}

#[test]
fn long_messages_are_read_straight_into_the_callers_buffer() {
    let _s = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let (a, b) = mp::Pipe().unwrap();
    let data: Arc<Vec<u8>> = Arc::new((0..8 * MIB).map(|i| (i % 251) as u8).collect());
    let send = |a: &Connection| {
        let (a, data) = (a.clone(), data.clone());
        std::thread::spawn(move || a.send_bytes(&data))
    };
    let mut buf = vec![0u8; 9 * MIB];
    for round in 0..3 {
        let t = send(&a);
        // nothing of the message's size besides the caller's buffer (only the 64 KiB
        // read buffer, in the first round)
        let (n, peak) = largest_allocation(|| b.recv_bytes_into(&mut buf[1..]));
        t.join().unwrap().unwrap();
        assert_eq!(n.unwrap(), data.len());
        assert!(buf[1..=data.len()] == data[..], "round {round}");
        assert!(peak < MIB, "round {round}: allocated {peak} bytes at once");
        // too short: the whole message, in a buffer of its own
        let t = send(&a);
        match b.recv_bytes_into(&mut buf[..MIB]) {
            Err(Error::BufferTooShort { message }) => assert!(message == *data),
            other => panic!("{other:?}"),
        }
        t.join().unwrap().unwrap();
        // and the connection goes on
        a.send_bytes(b"next").unwrap();
        assert_eq!(b.recv_bytes_into(&mut buf).unwrap(), 4);
        assert_eq!(&buf[..4], b"next");
    }
}
