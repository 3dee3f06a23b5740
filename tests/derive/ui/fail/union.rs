use mq_core::Task;

#[derive(Task)]
union Bits {
    int: u32,
    float: f32,
}
fn main() {}
