//! The module paths API.md names compile (a porter writes against exactly these).
#![allow(unused_imports)]
mp::test_support!();

use mp::connection::{
    answer_challenge, client, deliver_challenge, pipe, wait, Address, Client, Connection, Listener,
    Pipe, Waitable,
};
use mp::context::{
    get_all_start_methods, get_context, get_start_method, set_executable, set_forkserver_preload,
    set_start_method, set_start_method_force, start_method_if_set, Context, StartMethod,
};
use mp::managers::{
    ArrayProxy, BarrierProxy, BaseManager, BaseProxy, ConditionProxy, DictProxy, EventProxy,
    IteratorProxy, JoinableQueueProxy, ListProxy, LockProxy, NamespaceProxy, QueueProxy,
    RLockProxy, SemaphoreProxy, Server, Shareable, SyncManager, ValueProxy,
};
use mp::pool::{AsyncResult, ImapIter, Pool, PoolBuilder, ThreadPool};
use mp::process::{active_children, current_process, parent_process, JoinHandle, Process};
use mp::queue::{JoinableQueue, Queue, SimpleQueue};
use mp::shared_memory::{Item, ShareableItem, ShareableList, SharedMemory};
use mp::sharedctypes::{copy, synchronized, Array, RawArray, RawValue, ShmSafe, Value};
use mp::synchronize::{
    AnyLock, Barrier, BoundedSemaphore, Condition, Event, Lock, RLock, Semaphore,
};
use mp::util::{get_logger, log_to_stderr};
use mp::{cpu_count, freeze_support, process_cpu_count, spawn, Error, Result, Run, Shared};

#[test]
fn root_reexports() {
    let _: fn() -> Result<(mp::Connection, mp::Connection)> = mp::Pipe;
    let _ = mp::AnyLock::from(mp::Lock::new().unwrap());
    let _ = mp::Error::Timeout;
    let _ = mp::Queue::<u8>::new().unwrap();
    let _ = mp::SimpleQueue::<u8>::new().unwrap();
    let _ = mp::JoinableQueue::<u8>::new().unwrap();
    let _ = mp::Value::new(1u8).unwrap();
    let _ = mp::Array::<u8>::new(3).unwrap();
    let _ = mp::Condition::new(None).unwrap();
    let _ = mp::Barrier::new(2, None, None).unwrap();
    let _ = mp::get_context(None).unwrap().get_start_method();
    assert!(mp::cpu_count() >= 1);
}

#[test]
fn context_constructors() -> mp::Result<()> {
    let ctx = mp::get_context(Some(StartMethod::Spawn))?;
    let _ = ctx.pipe(true)?;
    let _: Queue<u8> = ctx.queue()?;
    let _: Queue<u8> = ctx.queue_with_maxsize(3)?;
    let _: SimpleQueue<u8> = ctx.simple_queue()?;
    let _: JoinableQueue<u8> = ctx.joinable_queue()?;
    let _ = ctx.lock()?;
    let _ = ctx.rlock()?;
    let _ = ctx.semaphore(2)?;
    let _ = ctx.bounded_semaphore(2)?;
    let _ = ctx.condition(None)?;
    let _ = ctx.event()?;
    let _ = ctx.barrier(2, None, None)?;
    let _ = ctx.value(1.5f64)?;
    let _ = ctx.array::<i32>(4)?;
    let _ = ctx.raw_value(1u8)?;
    let _ = ctx.raw_array::<u8>(4)?;
    assert_eq!(ctx.get_start_method(), StartMethod::Spawn);
    Ok(())
}

#[mp::task]
fn twice(x: u32) -> u32 {
    2 * x
}

#[test]
fn pool_paths() -> mp::Result<()> {
    let ctx = mp::get_context(Some(StartMethod::Fork))?;
    let pool: mp::Pool = ctx.pool(Some(1))?;
    let builder: PoolBuilder = mp::Pool::builder().processes(1).context(ctx);
    let r: AsyncResult<u32> = pool.apply_async(twice, (2,));
    assert_eq!(r.get_timeout(std::time::Duration::from_secs(30))?, 4);
    let it: ImapIter<u32> = pool.imap(twice, [1, 2]);
    assert_eq!(it.collect::<mp::Result<Vec<u32>>>()?, [2, 4]);
    drop(builder);
    let tp: mp::ThreadPool = ThreadPool::new(Some(1))?;
    assert_eq!(tp.map(|x: u32| x + 1, [1, 2])?, [2, 3]);
    let dp: mp::dummy::Pool = mp::dummy::Pool::new(Some(1))?;
    assert_eq!(dp.apply(|| 7, ())?, 7);
    let _ = (mp::dummy::Queue::<u8>::new()?, mp::dummy::Lock::new()?);
    let _ = (mp::dummy::Value::new(1u8)?, mp::dummy::Array::<u8>::new(2)?);
    let _ = mp::dummy::Process::new(|| (), ());
    Ok(())
}

#[test]
fn managers_paths() -> mp::Result<()> {
    let m: SyncManager = mp::Manager::new()?;
    let _: mp::managers::SyncManager = mp::get_context(None)?.manager()?;
    let _: ListProxy<i32> = m.list(vec![1])?;
    let _: DictProxy<String, i32> = m.dict()?;
    let _: NamespaceProxy = m.namespace()?;
    let _: LockProxy = m.lock()?;
    let _: RLockProxy = m.rlock()?;
    let _: SemaphoreProxy = m.semaphore(1)?;
    let _: SemaphoreProxy = m.bounded_semaphore(1)?;
    let _: ConditionProxy = m.condition(None)?;
    let _: EventProxy = m.event()?;
    let _: BarrierProxy = m.barrier(2)?;
    let _: QueueProxy<u8> = m.queue(0)?;
    let _: JoinableQueueProxy<u8> = m.joinable_queue(0)?;
    let _: ValueProxy<u8> = m.value(1)?;
    let _: ArrayProxy<u8> = m.array(vec![1, 2])?;
    let _ = m.address();
    let _: usize = m.number_of_objects()?;
    m.shutdown()?;
    m.shutdown()?;
    Ok(())
}
