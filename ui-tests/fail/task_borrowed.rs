#[mp::task]
fn greet(name: &str) {
    println!("{name}");
}

#[mp::task]
fn first<'a>(items: std::borrow::Cow<'a, str>) {
    println!("{items}");
}

fn main() {}
