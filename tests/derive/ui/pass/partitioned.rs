// `partitions` sets `TaskOptions::partitions`; `partition_by` implements `Task::partition_key`
// as the named field's `to_string()`. Without it the key is `None` (round-robin).
use mq_core::{Task, TaskOptions};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Task)]
#[task(queue = "transfers", partitions = 16, partition_by = "account")]
struct Transfer {
    account: String,
    amount: u64,
}

#[derive(Serialize, Deserialize, Task)]
#[task(partitions = 1024, partition_by = "type")]
struct Keyed {
    r#type: u32,
}

#[derive(Serialize, Deserialize, Task)]
#[task(partitions = 4)]
enum RoundRobin {
    A,
}

#[derive(Serialize, Deserialize, Task)]
#[task(partitions = 1)]
struct One;

const PARTITIONS: u16 = Transfer::OPTIONS.partitions;

fn main() {
    assert_eq!(PARTITIONS, 16);
    assert_eq!(
        Transfer::OPTIONS,
        TaskOptions {
            partitions: 16,
            ..TaskOptions::DEFAULT
        }
    );
    let t = Transfer {
        account: "acct-42".into(),
        amount: 5,
    };
    assert_eq!(t.partition_key(), Some("acct-42".to_owned()));
    let _ = t.amount;

    assert_eq!(Keyed::OPTIONS.partitions, mq_core::task::MAX_PARTITIONS);
    assert_eq!(Keyed { r#type: 7 }.partition_key(), Some("7".to_owned()));

    assert_eq!(RoundRobin::OPTIONS.partitions, 4);
    assert_eq!(RoundRobin::A.partition_key(), None);
    assert_eq!(One::OPTIONS, TaskOptions::DEFAULT);
    assert_eq!(One.partition_key(), None);
}
