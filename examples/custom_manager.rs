//! The docs' customized manager (`BaseManager.register('Maths', MathsClass)`):
//!
//! ```python
//! class MathsClass:
//!     def add(self, x, y):
//!         return x + y
//!     def mul(self, x, y):
//!         return x * y
//!
//! class MyManager(BaseManager):
//!     pass
//!
//! MyManager.register('Maths', MathsClass)
//!
//! if __name__ == '__main__':
//!     with MyManager() as manager:
//!         maths = manager.Maths()
//!         print(maths.add(4, 3))         # prints 7
//!         print(maths.mul(7, 8))         # prints 56
//! ```

/// Lives in the manager's server process; proxies call it.
#[derive(Default)]
pub struct MathsClass;

#[mp::shared]
impl MathsClass {
    pub fn add(&self, x: i64, y: i64) -> i64 {
        x + y
    }
    pub fn mul(&self, x: i64, y: i64) -> i64 {
        x * y
    }
}

#[derive(mp::Manager)]
#[register("Maths", MathsClass::default)]
pub struct MyManager;

#[mp::main]
fn main() -> mp::Result<()> {
    let manager = MyManager::start()?;
    let maths = manager.maths()?;
    println!("{}", maths.add(4, 3)?);
    println!("{}", maths.mul(7, 8)?);
    Ok(())
}
