// `unique`, `rate_key` and `concurrency_key` implement `Task::unique_key`, `rate_key` and
// `concurrency_key` as their fields' and methods' `to_string()`s joined by `:`; `unique_for`,
// `rate` and `key_concurrency` set `TaskOptions` (usable in const context).
use std::time::Duration;

use mq_core::{Rate, Task, TaskOptions};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Task)]
#[task(queue = "embed", unique = "product_id", unique_for = "24h")]
#[task(rate = "100/s", rate_key = "account")]
#[task(key_concurrency = 2, concurrency_key = "account")]
struct Embed {
    product_id: u64,
    account: String,
}

#[derive(Serialize, Deserialize, Task)]
#[task(unique = "shop, sku", rate = "5/1500ms")]
struct Listing {
    shop: u32,
    sku: String,
}

// Methods work for any type, enums too, alone or next to fields.
#[derive(Serialize, Deserialize, Task)]
#[task(unique = "dedup_key()", rate = "10/2s", rate_key = "tenant()")]
#[task(key_concurrency = 1, concurrency_key = "tenant()")]
enum Sync {
    Full { tenant: u32 },
    Delta { tenant: u32, since: u64 },
}

impl Sync {
    fn tenant(&self) -> u32 {
        match self {
            Sync::Full { tenant } | Sync::Delta { tenant, .. } => *tenant,
        }
    }

    fn dedup_key(&self) -> String {
        match self {
            Sync::Full { tenant } => format!("full-{tenant}"),
            Sync::Delta { tenant, since } => format!("delta-{tenant}-{since}"),
        }
    }
}

#[derive(Serialize, Deserialize, Task)]
#[task(unique = "r#type, digest()", rate = "60/m")]
struct Mixed {
    r#type: String,
    body: String,
}

impl Mixed {
    fn digest(&self) -> usize {
        self.body.len()
    }
}

#[derive(Serialize, Deserialize, Task)]
#[task(rate = "1000/h")]
struct PerQueue;

const EMBED: TaskOptions = Embed::OPTIONS;

fn main() {
    assert_eq!(
        EMBED,
        TaskOptions {
            unique_for: Some(Duration::from_secs(24 * 3600)),
            rate: Some(Rate::new(100, Duration::from_secs(1))),
            key_concurrency: Some(2),
            ..TaskOptions::DEFAULT
        }
    );
    let e = Embed {
        product_id: 42,
        account: "acme".into(),
    };
    assert_eq!(e.unique_key(), Some("42".to_owned()));
    assert_eq!(e.rate_key(), Some("acme".to_owned()));
    assert_eq!(e.concurrency_key(), Some("acme".to_owned()));
    assert_eq!(e.partition_key(), None);

    let l = Listing {
        shop: 7,
        sku: "A-1".into(),
    };
    assert_eq!(l.unique_key(), Some("7:A-1".to_owned()));
    assert_eq!(l.rate_key(), None);
    assert_eq!(l.concurrency_key(), None);
    assert_eq!(
        Listing::OPTIONS,
        TaskOptions {
            rate: Some(Rate::new(5, Duration::from_millis(1500))),
            ..TaskOptions::DEFAULT
        }
    );

    let s = Sync::Delta {
        tenant: 3,
        since: 99,
    };
    assert_eq!(s.unique_key(), Some("delta-3-99".to_owned()));
    assert_eq!(s.rate_key(), Some("3".to_owned()));
    assert_eq!(s.concurrency_key(), Some("3".to_owned()));
    assert_eq!(
        Sync::Full { tenant: 1 }.unique_key(),
        Some("full-1".to_owned())
    );
    assert_eq!(
        Sync::OPTIONS.rate,
        Some(Rate::new(10, Duration::from_secs(2)))
    );
    assert_eq!(Sync::OPTIONS.key_concurrency, Some(1));
    assert_eq!(Sync::OPTIONS.unique_for, None);

    let m = Mixed {
        r#type: "page".into(),
        body: "hello".into(),
    };
    assert_eq!(m.unique_key(), Some("page:5".to_owned()));
    assert_eq!(
        Mixed::OPTIONS.rate,
        Some(Rate::new(60, Duration::from_secs(60)))
    );

    assert_eq!(
        PerQueue::OPTIONS.rate,
        Some(Rate::new(1000, Duration::from_secs(3600)))
    );
    assert_eq!(PerQueue.rate_key(), None);
    assert_eq!(PerQueue.unique_key(), None);
}
