//! The examples of Python's `multiprocessing.shared_memory` docs, ported: a
//! `SharedMemory` block written and read through two handles, `ShareableList`s of mixed
//! and single types, a list handed to another process by name (the docs pickle it),
//! and a child that changes the list its parent made. Prints what the docs print.
//!
//! Run with `cargo run --example shared_memory`.

use mp::shared_memory::{Item, ShareableList, SharedMemory};

#[mp::task]
fn negate_last(sl: ShareableList<i64>) {
    let last = sl.len() - 1;
    let v = sl.get(last).expect("get");
    sl.set(last, -v).expect("set");
}

fn show(items: &[Item]) -> String {
    let parts: Vec<String> = items.iter().map(|i| i.to_string()).collect();
    format!("[{}]", parts.join(", "))
}

#[mp::main]
fn main() -> mp::Result<()> {
    // >>> shm_a = shared_memory.SharedMemory(create=True, size=10)
    let mut shm_a = SharedMemory::create(None, 10)?;
    let buffer = shm_a.buf_mut();
    println!("{}", buffer.len()); // 10
    buffer[..4].copy_from_slice(&[22, 33, 44, 55]); // Modify multiple at once
    buffer[4] = 100; // Modify single byte at a time
                     // Attach to an existing shared memory block
    let mut shm_b = SharedMemory::attach(shm_a.name())?;
    let copied: Vec<i8> = shm_b.buf()[..5].iter().map(|b| *b as i8).collect();
    println!("array('b', {copied:?})"); // array('b', [22, 33, 44, 55, 100])
    shm_b.buf_mut()[..5].copy_from_slice(b"howdy"); // Modify via shm_b using bytes
    println!("{}", Item::Bytes(shm_a.buf()[..5].to_vec())); // b'howdy'
    shm_b.close()?; // Close each SharedMemory instance
    shm_a.close()?;
    shm_a.unlink()?; // Call unlink only once to release the shared memory

    // >>> a = shared_memory.ShareableList(['howdy', b'HoWdY', -273.154, 100, None, True, 42])
    let a = ShareableList::new(&[
        Item::from("howdy"),
        Item::from(b"HoWdY".to_vec()),
        Item::Float(-273.154),
        Item::Int(100),
        Item::None,
        Item::Bool(true),
        Item::Int(42),
    ])?;
    let kinds: Vec<String> = a
        .items()?
        .iter()
        .map(|i| {
            let k = match i {
                Item::Str(_) => "str",
                Item::Bytes(_) => "bytes",
                Item::Float(_) => "float",
                Item::Int(_) => "int",
                Item::None => "NoneType",
                Item::Bool(_) => "bool",
            };
            format!("<class '{k}'>")
        })
        .collect();
    println!("[{}]", kinds.join(", "));
    println!("{}", a.get(2)?); // -273.154
    a.set(2, Item::Float(-78.5))?;
    println!("{}", a.get(2)?); // -78.5
    a.set(2, Item::from("dry ice"))?; // Changing data types is supported as well
    println!("{}", a.get(2)?); // 'dry ice'
    if let Err(e) = a.set(
        2,
        Item::from("larger than previously allocated storage space"),
    ) {
        println!("ValueError: {e}");
    }
    println!("{}", a.get(2)?); // 'dry ice'
    println!("{}", a.len()); // 7
    println!("{}", a.index(&Item::Int(42))?); // 6
    println!("{}", a.count(&Item::from(b"howdy".to_vec()))?); // 0
    println!("{}", a.count(&Item::from(b"HoWdY".to_vec()))?); // 1
    a.shm().close()?;
    a.shm().unlink()?;

    // >>> b = shared_memory.ShareableList(range(5))         # In a first process
    // >>> c = shared_memory.ShareableList(name=b.shm.name)  # In a second process
    let b = ShareableList::new(&[0i64, 1, 2, 3, 4])?;
    let c: ShareableList<i64> = ShareableList::attach(b.shm().name())?;
    println!("{}", format!("{c:?}").replace(c.shm().name(), "..."));
    c.set(4, -999)?;
    println!("{}", b.get(4)?); // -999
    b.shm().close()?;
    c.shm().close()?;
    c.shm().unlink()?;

    // >>> sl = shared_memory.ShareableList(range(10))
    // >>> deserialized_sl = pickle.loads(pickle.dumps(sl))
    let sl = ShareableList::new(&(0..10).collect::<Vec<i64>>())?;
    println!("{:?}", sl.to_vec()?);
    let deserialized_sl: ShareableList<i64> = mp::codec::decode(&mp::codec::encode(&sl)?)?;
    println!(
        "{}",
        format!("{deserialized_sl:?}").replace(sl.shm().name(), "...")
    );
    sl.set(0, -1)?;
    deserialized_sl.set(1, -2)?;
    println!("{:?}", sl.to_vec()?); // [-1, -2, 2, 3, 4, 5, 6, 7, 8, 9]
    println!("{:?}", deserialized_sl.to_vec()?);

    // and across processes: a child negates the last item of the list we made
    let p = mp::Process::new(negate_last, (sl.clone(),));
    p.start()?;
    p.join()?;
    println!("{}", show(&sl.items()?)); // [-1, -2, 2, 3, 4, 5, 6, 7, 8, -9]
    sl.shm().close()?;
    sl.shm().unlink()?;
    Ok(())
}
