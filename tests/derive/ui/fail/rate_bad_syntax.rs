use mq_core::Task;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Task)]
#[task(rate = "100 per second")]
struct A;

#[derive(Serialize, Deserialize, Task)]
#[task(rate = "1.5/s")]
struct B;

#[derive(Serialize, Deserialize, Task)]
#[task(rate = "100/fortnight")]
struct C;

#[derive(Serialize, Deserialize, Task)]
#[task(rate = 100)]
struct D;
fn main() {}
