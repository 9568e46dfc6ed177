pub struct Tree;

#[mp::shared(method_to_typeid(branch = "Tree", leaf = "Leaf"))]
impl Tree {
    pub fn branch(&self) -> Tree {
        Tree
    }
}

fn main() {}
