#[mp::task]
fn noop() {}

#[mp::main]
fn main() -> Result<(), mp::Error> {
    let p = mp::Process::new(noop, ());
    p.start()?;
    p.join()?;
    assert_eq!(p.exitcode(), Some(0));
    Ok(())
}
