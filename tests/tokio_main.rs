//! `#[mp::main]` composes with `#[tokio::main]`: a spawned child runs only its task,
//! never the async main (which would start the child again, forever).

#[mp::task]
fn square(x: u64) -> u64 {
    x * x
}

#[mp::main]
#[tokio::main(flavor = "current_thread")]
async fn main() {
    let ctx = mp::get_context(Some(mp::StartMethod::Spawn)).unwrap();
    let _ = ctx;
    mp::set_start_method_force(Some(mp::StartMethod::Spawn));
    let h = mp::spawn(square, (12,)).unwrap();
    let v = tokio::task::spawn_blocking(move || h.join())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(v, 144);
    mp::set_start_method_force(Some(mp::StartMethod::ForkServer));
    assert_eq!(mp::spawn(square, (3,)).unwrap().join().unwrap(), 9);
    println!("test tokio_main_composes ... ok\n\ntest result: ok. 1 passed; 0 failed");
}
