//! Writes every target's seeds (`mp::__fuzz::seeds`) into `DIR/<target>/seed-<n>`:
//! the starting corpus `.ci/fuzz` gives libFuzzer.
fn main() {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).expect("usage: seeds DIR"));
    for (name, _) in mp::__fuzz::TARGETS {
        let d = dir.join(name);
        std::fs::create_dir_all(&d).unwrap();
        for (i, s) in mp::__fuzz::seeds(name).iter().enumerate() {
            std::fs::write(d.join(format!("seed-{i}")), s).unwrap();
        }
    }
}
