//! `#[derive(Task)]` for mq. Use it through `mq_core::Task`, which re-exports it next to the
//! trait of the same name.
//!
//! Layout: `attr.rs` parses `#[task(...)]` into a span-keeping model, `check.rs` applies the
//! semantic rules and fills in defaults, `expand.rs` emits the impl. Errors from every stage are
//! gathered in one `Ctxt` so a single build reports all of them.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use syn::{parse_macro_input, DeriveInput};

mod attr;
mod check;
mod expand;

/// Derives `mq_core::Task`: the task's name, queue and [`TaskOptions`].
///
/// The type must be a non-generic struct or enum that implements serde's `Serialize` and
/// `Deserialize` (and is `Send + 'static`).
///
/// # Example
///
/// ```ignore
/// use mq_core::Task;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize, Task)]
/// #[task(queue = "images", max_retries = 5, timeout = "2m")]
/// #[task(backoff = "exponential(1s, 10m)", concurrency = 8)]
/// struct EmbedImage {
///     product_id: u64,
///     url: String,
/// }
///
/// assert_eq!(EmbedImage::NAME, "EmbedImage");
/// assert_eq!(EmbedImage::QUEUE, "images");
/// assert_eq!(EmbedImage::OPTIONS.max_retries, 5);
/// ```
///
/// # Attributes
///
/// All keys are optional and may be spread over several `#[task(...)]` attributes; each key
/// may be given once. Keys that are left out take their value from
/// `mq_core::TaskOptions::DEFAULT`.
///
/// | Key | Value | Default |
/// |-----|-------|---------|
/// | `queue` | string: non-empty, at most 200 of `A-Z a-z 0-9 _ . : -` | type name in snake_case |
/// | `name` | string: non-empty, no whitespace or control characters | type name |
/// | `max_retries` | integer literal (`u32`) | `TaskOptions::DEFAULT` (3) |
/// | `timeout` | human duration string, or `"none"` | `TaskOptions::DEFAULT` (30 min) |
/// | `backoff` | `"none"`, `"fixed(<duration>)"`, `"exponential(<base>, <cap>)"` | `TaskOptions::DEFAULT` (`exponential(1s, 10m)`) |
/// | `concurrency` | integer literal ≥ 1 (`usize`) | none (only the worker's global limit) |
/// | `partitions` | integer literal, 1 to 1024 (`u16`) | `TaskOptions::DEFAULT` (1: one stream) |
/// | `partition_by` | string: name of a field (structs with named fields), needs `partitions` > 1 | none (round-robin) |
/// | `unique` | string: fields and/or `method()`s, separated by commas | none (not unique) |
/// | `unique_for` | human duration string > 0, needs `unique` | none (key released on success) |
/// | `rate` | string `"<count>/<period>"`: count ≥ 1 (`u32`), period > 0 | none (no limit) |
/// | `rate_key` | string: fields and/or `method()`s, needs `rate` | none (one limit for the queue) |
/// | `key_concurrency` | integer literal ≥ 1 (`u32`), needs `concurrency_key` | none (no per-key limit) |
/// | `concurrency_key` | string: fields and/or `method()`s, needs `key_concurrency` | none |
/// | `priority` | `"high"`, `"normal"` or `"low"` | none (not prioritized: one stream) |
/// | `crate` | string: path of the runtime crate | `"::mq_core"` |
///
/// - **`queue = "images"`**: the Redis queue the task goes to. The default is the type name
///   in snake_case: `EmbedImage` → `embed_image`, `HTTPJob` → `http_job`. Queue names are used
///   inside Redis hash tags (`{queue}`), hence the restricted character set (no braces).
/// - **`name = "EmbedImage"`**: the name written into each stream entry and used by workers to
///   pick the handler. The default is the type name; set it to keep the wire name stable when
///   renaming the type.
/// - **`max_retries = 5`**: retries after the first attempt before the task is dead-lettered.
/// - **`timeout = "30s"`**: maximum run time of one attempt, parsed by
///   [`humantime::parse_duration`](https://docs.rs/humantime/2/humantime/fn.parse_duration.html):
///   `"500ms"`, `"30s"`, `"2m"`, `"1h 30m"`, ... Must be greater than zero; `timeout = "none"`
///   disables the limit.
/// - **`backoff = "exponential(1s, 10m)"`**: delay before each retry.
///   - `"none"`: retry immediately.
///   - `"fixed(5s)"`: wait exactly 5 s before every retry, no jitter (must be greater than
///     zero; use `"none"` otherwise).
///   - `"exponential(1s, 10m)"`: wait `base * 2^attempt`, at most `cap`, jittered to 50-100 %
///     of that so tasks that failed together do not retry together; `base` must be greater
///     than zero and `cap` at least `base`.
///
///   Whitespace around the parts is ignored: `"exponential( 1s , 10m )"` is fine.
/// - **`concurrency = 8`**: per-queue limit of in-flight tasks in each worker process.
/// - **`partitions = 8`**: spreads the queue over 8 streams, `{queue#0}`..`{queue#7}`, each its
///   own hash tag and so its own slot of a Redis Cluster; workers read every partition. At
///   most `mq_core::task::MAX_PARTITIONS` (1024). Every task type of one queue must give the
///   same number.
/// - **`partition_by = "account"`**: tasks with the same value of the field `account` go to
///   the same partition, one stream, and so are read in their enqueue order. The derive
///   implements `Task::partition_key` as the field's `to_string()`, so the field's type must
///   implement `Display` (rustc's error points at the string otherwise). The partition of a
///   keyed task is `crc16_xmodem(key) % partitions` over the key's UTF-8 bytes: exactly the
///   CRC16 of Redis Cluster's key slots, without its `% 16384`, so producers in other
///   languages can compute it. Without `partition_by`, tasks are spread round-robin.
///
///   Only a field can be named, not a method: for a computed key, store it in a field (or
///   implement `Task` by hand with a `partition_key` method). Enums, tuple structs and unit
///   structs have no named field and are rejected, as is `partition_by` without
///   `partitions` > 1 (with one partition there is nothing to pick).
/// - **`unique = "product_id"`**: while a task of this type with the same key is queued,
///   delayed, running or retrying, enqueueing another one returns the live task's id instead
///   of adding it. The derive implements `Task::unique_key` from a *key spec*, the syntax
///   shared by `unique`, `rate_key` and `concurrency_key`: entries separated by commas, each
///   either the name of a field (`"product_id"`; structs with named fields only) or a method of
///   the task taking `&self`, written with parentheses (`"dedup_key()"`; any type, enums too).
///   The key is the entries' `to_string()`s joined by `:` (one entry: just its
///   `to_string()`), so each field and method result must implement `Display` (rustc's error
///   points at the string otherwise): `unique = "shop, sku"` gives `"7:A-1"`. Values that
///   contain `:` themselves can make two different pairs give the same key; use a method to
///   build an unambiguous one when that matters. Whitespace around entries is ignored; an
///   entry may not be empty or repeated, and the derive's own methods (`unique_key()`,
///   `rate_key()`, `concurrency_key()`, `partition_key()`) cannot be named.
/// - **`unique_for = "24h"`**: keep a unique task's key this long after it succeeded, a
///   de-duplication window (a human duration like `timeout`, greater than zero). Without it
///   the key is released as soon as the task succeeds. Needs `unique`.
/// - **`rate = "100/s"`**: at most `count` tasks of this type start per `period`, across all
///   workers and hosts. The grammar is `"<count>/<period>"`: `count` a whole number from 1 to
///   `u32::MAX`; `period` either a unit alone, meaning one of it (`"s"`, `"m"`, `"h"`, or any
///   unit of `humantime` such as `"ms"`, `"min"`, `"day"`), or a human duration greater than
///   zero (`"2s"`, `"1500ms"`, `"1h 30m"`). Examples: `"100/s"`, `"10/m"`, `"1000/h"`,
///   `"10/2s"`, `"5/1500ms"`. Whitespace around the parts is ignored. Sets
///   `TaskOptions::rate` to `Some(Rate::new(count, period))`.
/// - **`rate_key = "account"`**: each value of the key (a key spec, see `unique`) gets its own
///   limit of `rate`, instead of one limit for the whole queue; implements `Task::rate_key`.
///   Needs `rate`.
/// - **`key_concurrency = 2, concurrency_key = "account"`**: at most 2 tasks with one value of
///   the key (a key spec, see `unique`) run at once across all workers; implements
///   `Task::concurrency_key` and sets `TaskOptions::key_concurrency`. Each needs the other.
/// - **`priority = "normal"`**: makes the task type prioritized: its tasks go to the stream of
///   their level (this one unless the producer's `with_priority` asks for another) and its
///   workers read the queue's High, Normal and Low streams, higher levels first. Sets
///   `TaskOptions::priority` to `Some(Priority::Normal)`. Any other value is a compile error.
/// - **`crate = "::mq_core"`**: where to find `Task`, `TaskOptions`, `Backoff` and `Rate`, for crates
///   that re-export mq under another path:
///
///   ```ignore
///   extern crate mq_core as renamed;
///
///   #[derive(serde::Serialize, serde::Deserialize, renamed::Task)]
///   #[task(crate = "renamed", timeout = "none", backoff = "fixed(5s)")]
///   enum Maintenance {
///       Vacuum,
///       Reindex { table: String },
///   }
///   ```
///
/// # Generated code
///
/// ```text
/// #[automatically_derived]
/// impl ::mq_core::Task for EmbedImage {
///     const NAME: &'static str = "EmbedImage";
///     const QUEUE: &'static str = "images";
///     const OPTIONS: ::mq_core::TaskOptions = ::mq_core::TaskOptions {
///         max_retries: 5,
///         timeout: ::core::option::Option::Some(::core::time::Duration::new(120u64, 0u32)),
///         ..::mq_core::TaskOptions::DEFAULT
///     };
/// }
/// ```
///
/// `#[task(partitions = 8, partition_by = "account")]` adds `partitions: 8,` to `OPTIONS` and,
/// inside the impl:
///
/// ```text
/// fn partition_key(&self) -> ::core::option::Option<::std::string::String> {
///     ::core::option::Option::Some(::std::string::ToString::to_string(&self.account))
/// }
/// ```
///
/// `#[task(unique = "shop, sku", unique_for = "24h", rate = "10/s", rate_key = "shop")]` adds
/// `unique_for: Some(Duration::new(86400u64, 0u32))` and `rate: Some(Rate::new(10u32,
/// Duration::new(1u64, 0u32)))` (fully qualified) to `OPTIONS` and, inside the impl:
///
/// ```text
/// fn unique_key(&self) -> ::core::option::Option<::std::string::String> {
///     ::core::option::Option::Some([
///         ::std::string::ToString::to_string(&self.shop),
///         ::std::string::ToString::to_string(&self.sku)
///     ].join(":"))
/// }
/// fn rate_key(&self) -> ::core::option::Option<::std::string::String> {
///     ::core::option::Option::Some(::std::string::ToString::to_string(&self.shop))
/// }
/// ```
///
/// `key_concurrency = 2, concurrency_key = "account"` adds `key_concurrency: Some(2)` and
/// `fn concurrency_key` alike; a method entry `"dedup_key()"` reads `&self.dedup_key()`.
///
/// # Errors
///
/// Every mistake is reported in one build, each at the offending token: unknown or repeated
/// keys, values of the wrong literal type, unparsable durations or backoffs, an exponential
/// `cap` below its `base`, `concurrency = 0`, `partitions` outside 1 to 1024, a `partition_by`
/// that names no field of the struct, is used on an enum, tuple or unit struct, or comes
/// without `partitions` > 1, key specs (`unique`, `rate_key`, `concurrency_key`) that are
/// empty, repeat an entry, name no field of the struct or a field of a type without named
/// fields, a `rate` that does not follow `"<count>/<period>"` or has a zero count or period,
/// `unique_for = "0s"`, `key_concurrency = 0`, `unique_for` without `unique`, `rate_key`
/// without `rate`, `key_concurrency` without `concurrency_key` and the other way round,
/// invalid queue or task names, unions and generic types. A type that lacks
/// `Serialize`/`Deserialize` gets rustc's trait-bound error on its name; a `partition_by`,
/// `unique`, `rate_key` or `concurrency_key` field or method result that is not `Display`
/// gets it on the string, as does a named method that does not exist.
///
/// [`TaskOptions`]: https://docs.rs/mq-core/latest/mq_core/struct.TaskOptions.html
#[proc_macro_derive(Task, attributes(task))]
pub fn derive_task(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    derive(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Parse, check, expand; all errors of the first two stages are combined.
fn derive(input: &DeriveInput) -> syn::Result<TokenStream2> {
    let mut cx = Ctxt::new();
    let attrs = attr::TaskAttrs::from_attrs(&mut cx, &input.attrs);
    let model = check::check(&mut cx, input, attrs);
    cx.finish()?;
    Ok(expand::expand(&model))
}

/// Collects errors while parsing and checking, like serde_derive's `Ctxt`.
#[derive(Debug, Default)]
pub(crate) struct Ctxt {
    errors: Option<syn::Error>,
}

impl Ctxt {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Records an error; it is combined with the earlier ones.
    pub(crate) fn push(&mut self, err: syn::Error) {
        match &mut self.errors {
            Some(all) => all.combine(err),
            None => self.errors = Some(err),
        }
    }

    /// Records an error with `msg` at `span`.
    pub(crate) fn error(&mut self, span: Span, msg: impl std::fmt::Display) {
        self.push(syn::Error::new(span, msg));
    }

    /// All recorded errors, combined into one.
    pub(crate) fn finish(self) -> syn::Result<()> {
        match self.errors {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }
}
