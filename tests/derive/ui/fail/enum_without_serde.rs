use mq_core::Task;

#[derive(Task)]
enum Maintenance {
    Vacuum,
    Reindex { table: String },
}
fn main() {}
