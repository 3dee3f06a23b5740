// The runtime crate under another name, and behind a re-export.
extern crate mq_core as renamed;

mod reexport {
    pub use mq_core as mq;
}

mod tasks {
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize, renamed::Task)]
    #[task(crate = "renamed", backoff = "fixed(2s)")]
    pub struct ViaExternCrate;

    #[derive(Serialize, Deserialize, crate::reexport::mq::Task)]
    #[task(crate = "crate::reexport::mq", concurrency = 2)]
    pub enum ViaReexport {
        A,
    }
}

fn main() {
    use std::time::Duration;
    assert_eq!(
        <tasks::ViaExternCrate as renamed::Task>::QUEUE,
        "via_extern_crate"
    );
    assert_eq!(
        <tasks::ViaExternCrate as renamed::Task>::OPTIONS.backoff,
        renamed::Backoff::Fixed(Duration::from_secs(2))
    );
    assert_eq!(
        <tasks::ViaReexport as reexport::mq::Task>::NAME,
        "ViaReexport"
    );
    assert_eq!(
        <tasks::ViaReexport as reexport::mq::Task>::OPTIONS.concurrency,
        Some(2)
    );
}
