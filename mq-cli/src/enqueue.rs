//! `mq enqueue`: one task from JSON, stored as MessagePack with named fields.

use mq_core::Producer;
use serde_json::json;

use crate::{cli::EnqueueArgs, error::CliError, output, Ctx};

/// The MessagePack payload for JSON `text`: exactly what `rmp_serde::to_vec_named` makes of
/// the JSON value, so objects become maps with string keys, like a struct with named fields.
pub(crate) fn payload_from_json(text: &str) -> Result<Vec<u8>, CliError> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| CliError::BadJson(e.to_string()))?;
    rmp_serde::to_vec_named(&value).map_err(|e| CliError::Encode(e.to_string()))
}

pub(crate) async fn run(ctx: &Ctx, args: EnqueueArgs) -> Result<(), CliError> {
    let payload = payload_from_json(&args.payload)?;
    // Check the name before connecting, so a typo fails fast even when Redis is down.
    mq_core::redis::keys::validate_queue_name(&args.queue).map_err(mq_core::Error::Config)?;
    let producer = Producer::builder(&ctx.url)
        .prefix(&ctx.prefix)
        .tls(ctx.tls.clone())
        .connect()
        .await
        .map_err(|e| ctx.connect_error(e))?;
    let id = producer
        .enqueue_raw(&args.queue, &args.name, payload)
        .await?;
    if ctx.json {
        output::print_json(&json!({ "id": id, "queue": args.queue, "name": args.name }))
    } else {
        output::print(&format!("{id}\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_is_msgpack_with_named_fields() {
        #[derive(serde::Serialize)]
        struct T {
            id: u64,
            tags: Vec<&'static str>,
            url: &'static str,
        }
        let want = rmp_serde::to_vec_named(&T {
            id: 7,
            tags: vec!["a"],
            url: "u",
        })
        .unwrap_or_default();
        let got = payload_from_json(r#"{"id": 7, "tags": ["a"], "url": "u"}"#);
        assert_eq!(got.ok(), Some(want));
        assert!(matches!(
            payload_from_json("{nope"),
            Err(CliError::BadJson(_))
        ));
    }
}
