use mq_core::Task;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Task)]
#[task(priority = "urgent")]
struct A;

#[derive(Serialize, Deserialize, Task)]
#[task(priority = 1)]
struct B;

#[derive(Serialize, Deserialize, Task)]
#[task(priority = "High")]
struct C;

fn main() {}
