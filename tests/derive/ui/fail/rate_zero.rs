use mq_core::Task;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Task)]
#[task(rate = "0/s")]
struct A;

#[derive(Serialize, Deserialize, Task)]
#[task(rate = "10/0ms")]
struct B;
fn main() {}
