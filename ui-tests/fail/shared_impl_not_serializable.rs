pub struct NotSerde;

pub struct Store;

#[mp::shared]
impl Store {
    pub fn put(&self, item: NotSerde) {
        let _ = item;
    }
    pub fn take(&self) -> NotSerde {
        NotSerde
    }
}

fn main() {}
