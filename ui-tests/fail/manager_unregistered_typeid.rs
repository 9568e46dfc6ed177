#[derive(Default)]
pub struct Tree;

#[mp::shared(method_to_typeid(branch = "Branch"))]
impl Tree {
    pub fn branch(&self) -> Tree {
        Tree
    }
}

#[derive(mp::Manager)]
#[register("Tree", Tree::default)]
pub struct MyManager;

fn main() {}
