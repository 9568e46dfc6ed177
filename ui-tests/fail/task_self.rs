struct Worker;

impl Worker {
    #[mp::task]
    fn work(&self, n: u32) -> u32 {
        n
    }
}

fn main() {}
