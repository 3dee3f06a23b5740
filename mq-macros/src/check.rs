//! Semantic rules on the parsed [`TaskAttrs`] and the shape of the input type, producing the
//! [`TaskModel`] that `expand.rs` turns into code.
//!
//! Every rule records its error in the [`Ctxt`] and carries on; an invalid value is dropped
//! (falls back to the default) so the model is always complete.

use std::time::Duration;

use syn::ext::IdentExt as _;
use syn::punctuated::Punctuated;
use syn::token::Comma;
use syn::{Data, DeriveInput, Field, Fields, Ident};

use crate::attr::{BackoffSpec, KeyPart, RateSpec, Spanned, TaskAttrs};
use crate::Ctxt;

/// Longest accepted queue name.
pub(crate) const MAX_QUEUE_LEN: usize = 200;

/// Most partitions of a queue; the same value as `mq_core::MAX_PARTITIONS` (this crate cannot
/// depend on mq-core, which re-exports it).
pub(crate) const MAX_PARTITIONS: u16 = 1024;

/// A valid task definition: everything `expand.rs` needs.
pub(crate) struct TaskModel {
    /// The type the impl is for.
    pub(crate) ident: Ident,
    /// Path of the runtime crate (`::mq_core` unless `crate = "..."`).
    pub(crate) krate: syn::Path,
    pub(crate) name: String,
    pub(crate) queue: String,
    /// Options given explicitly; the others come from `TaskOptions::DEFAULT`.
    pub(crate) max_retries: Option<Spanned<u32>>,
    pub(crate) timeout: Option<Spanned<Option<Duration>>>,
    pub(crate) backoff: Option<Spanned<BackoffSpec>>,
    pub(crate) concurrency: Option<Spanned<usize>>,
    pub(crate) partitions: Option<Spanned<u16>>,
    /// The field named by `partition_by`, spanned at the string literal that named it.
    pub(crate) partition_by: Option<Spanned<Ident>>,
    /// `unique`, `rate_key` and `concurrency_key`: the fields and methods whose
    /// `to_string()`s, joined by `:`, make the key; spanned (each ident too) at the string.
    pub(crate) unique: Option<Spanned<Vec<KeySource>>>,
    pub(crate) unique_for: Option<Spanned<Duration>>,
    pub(crate) result_ttl: Option<Spanned<Duration>>,
    pub(crate) events: Option<proc_macro2::Span>,
    pub(crate) rate: Option<Spanned<RateSpec>>,
    pub(crate) rate_key: Option<Spanned<Vec<KeySource>>>,
    pub(crate) key_concurrency: Option<Spanned<u32>>,
    pub(crate) concurrency_key: Option<Spanned<Vec<KeySource>>>,
    /// `high`, `normal` or `low` (checked when parsed).
    pub(crate) priority: Option<Spanned<String>>,
}

/// One resolved entry of a key attribute.
pub(crate) enum KeySource {
    /// `self.field`
    Field(Ident),
    /// `self.method()`
    Method(Ident),
}

/// Checks the input type and its attributes, recording every problem in `cx`.
pub(crate) fn check(cx: &mut Ctxt, input: &DeriveInput, attrs: TaskAttrs) -> TaskModel {
    check_shape(cx, input);
    let partitions_given = attrs.given("partitions");
    // A key given with a rejected value already has its error: no second one saying it is
    // missing.
    let unique_given = attrs.given("unique");
    let rate_given = attrs.given("rate");
    let key_concurrency_given = attrs.given("key_concurrency");
    let concurrency_key_given = attrs.given("concurrency_key");

    let ident = input.ident.clone();
    let type_name = ident_name(&ident);

    let name = match attrs.name {
        Some(n) => {
            validate_name(&n.value)
                .map_err(|e| cx.error(n.span, e))
                .ok();
            n.value
        }
        None => type_name.clone(),
    };

    let queue = match attrs.queue {
        Some(q) => {
            validate_queue(&q.value)
                .map_err(|e| cx.error(q.span, e))
                .ok();
            q.value
        }
        None => {
            let derived = snake_case(&type_name);
            if let Err(e) = validate_queue(&derived) {
                cx.error(
                    ident.span(),
                    format!(
                        "the default queue name `{derived}` (the type name in snake_case) is \
                         invalid: {e}; set one with `#[task(queue = \"...\")]`"
                    ),
                );
            }
            derived
        }
    };

    let timeout = attrs.timeout.filter(|t| match t.value {
        Some(d) if d.is_zero() => {
            cx.error(
                t.span,
                "timeout must be greater than zero; use `timeout = \"none\"` for no timeout",
            );
            false
        }
        _ => true,
    });

    let backoff = attrs.backoff.filter(|b| match validate_backoff(&b.value) {
        Ok(()) => true,
        Err(e) => {
            cx.error(b.span, e);
            false
        }
    });

    let concurrency = attrs.concurrency.filter(|c| {
        if c.value == 0 {
            cx.error(
                c.span,
                "concurrency must be at least 1; leave it out to use only the worker's global \
                 limit",
            );
        }
        c.value != 0
    });

    let partitions = attrs.partitions.and_then(|p| {
        let valid = u16::try_from(p.value)
            .ok()
            .filter(|n| (1..=MAX_PARTITIONS).contains(n));
        if valid.is_none() {
            cx.error(
                p.span,
                format!(
                    "partitions must be between 1 and {MAX_PARTITIONS}, got {}; leave it out \
                     for one stream (the default)",
                    p.value
                ),
            );
        }
        valid.map(|n| Spanned::new(n, p.span))
    });

    let partition_by = match &attrs.partition_by {
        Some(by) => {
            // A `partitions` value that was given but rejected already has its error.
            let single = match &partitions {
                Some(p) => p.value == 1,
                None => !partitions_given,
            };
            if single {
                cx.error(
                    by.span,
                    "partition_by needs partitions = N with N > 1: with one partition every \
                     task goes to the same stream; add e.g. `partitions = 8`",
                );
            }
            partition_field(input, &by.value)
                .map_err(|e| cx.error(by.span, e))
                .ok()
                .map(|field| {
                    let mut field = field.clone();
                    field.set_span(by.span);
                    Spanned::new(field, by.span)
                })
        }
        None => None,
    };

    let unique = key_sources(cx, input, "unique", attrs.unique.as_ref());
    if let Some(u) = &attrs.unique_for {
        if !unique_given {
            cx.error(
                u.span,
                "unique_for needs `unique`: it keeps a unique task's key for a while after the \
                 task succeeded; add e.g. `unique = \"product_id\"`",
            );
        }
    }
    let unique_for = attrs.unique_for.filter(|u| {
        if u.value.is_zero() {
            cx.error(
                u.span,
                "unique_for must be greater than zero; leave it out to release the key as soon \
                 as the task succeeds",
            );
        }
        !u.value.is_zero()
    });

    let rate = attrs.rate.filter(|r| match validate_rate(&r.value) {
        Ok(()) => true,
        Err(e) => {
            cx.error(r.span, e);
            false
        }
    });
    let rate_key = key_sources(cx, input, "rate_key", attrs.rate_key.as_ref());
    if let Some(k) = &attrs.rate_key {
        if !rate_given {
            cx.error(
                k.span,
                "rate_key needs `rate`: each value of the key gets its own limit of `rate`; add \
                 e.g. `rate = \"10/s\"`",
            );
        }
    }

    if let Some(k) = &attrs.key_concurrency {
        if !concurrency_key_given {
            cx.error(
                k.span,
                "key_concurrency needs `concurrency_key`, the key whose running tasks it \
                 limits; add e.g. `concurrency_key = \"account\"`",
            );
        }
    }
    let key_concurrency = attrs.key_concurrency.filter(|k| {
        if k.value == 0 {
            cx.error(
                k.span,
                "key_concurrency must be at least 1; leave it and `concurrency_key` out for no \
                 per-key limit",
            );
        }
        k.value != 0
    });
    let concurrency_key = key_sources(cx, input, "concurrency_key", attrs.concurrency_key.as_ref());
    if let Some(k) = &attrs.concurrency_key {
        if !key_concurrency_given {
            cx.error(
                k.span,
                "concurrency_key needs `key_concurrency = N`, how many tasks of one key value \
                 may run at once; add e.g. `key_concurrency = 2`",
            );
        }
    }

    let krate = match attrs.krate {
        Some(k) => k.value,
        None => syn::parse_quote!(::mq_core),
    };

    TaskModel {
        ident,
        krate,
        name,
        queue,
        max_retries: attrs.max_retries,
        timeout,
        backoff,
        concurrency,
        partitions,
        partition_by,
        unique,
        unique_for,
        rate,
        rate_key,
        key_concurrency,
        concurrency_key,
        priority: attrs.priority,
        result_ttl: attrs.result_ttl,
        events: attrs.events,
    }
}

/// Resolves the entries of a key attribute (`unique`, `rate_key`, `concurrency_key`) against
/// the input type. `None` (with every problem recorded) if any entry is invalid.
fn key_sources(
    cx: &mut Ctxt,
    input: &DeriveInput,
    key: &str,
    spec: Option<&Spanned<Vec<KeyPart>>>,
) -> Option<Spanned<Vec<KeySource>>> {
    let spec = spec?;
    let span = spec.span;
    let mut out = Vec::new();
    let mut valid = true;
    let mut shape_reported = false;
    for part in &spec.value {
        match part {
            KeyPart::Method(m) => {
                let mut m = m.clone();
                m.set_span(span);
                out.push(KeySource::Method(m));
            }
            KeyPart::Field(name) => {
                let fields = match named_fields(input, key, true) {
                    Ok(fields) => fields,
                    Err(e) => {
                        // Once per attribute, however many fields it names.
                        if !shape_reported {
                            cx.error(span, e);
                        }
                        shape_reported = true;
                        valid = false;
                        continue;
                    }
                };
                match find_field(input, fields, key, name, true) {
                    Ok(field) => {
                        let mut field = field.clone();
                        field.set_span(span);
                        out.push(KeySource::Field(field));
                    }
                    Err(e) => {
                        cx.error(span, e);
                        valid = false;
                    }
                }
            }
        }
    }
    valid.then(|| Spanned::new(out, span))
}

/// The field of `input` named `name`, for `partition_by`.
fn partition_field<'a>(input: &'a DeriveInput, name: &str) -> Result<&'a Ident, String> {
    let fields = named_fields(input, "partition_by", false)?;
    find_field(input, fields, "partition_by", name, false)
}

/// The named fields of `input`, or why `key`, which names fields, cannot be used on it.
/// `methods`: whether `key` also accepts methods (then the message says so).
fn named_fields<'a>(
    input: &'a DeriveInput,
    key: &str,
    methods: bool,
) -> Result<&'a Punctuated<Field, Comma>, String> {
    let ty = ident_name(&input.ident);
    let hint = if methods {
        format!("; a method works for any type, e.g. `{key} = \"dedup_key()\"`")
    } else {
        String::new()
    };
    match &input.data {
        Data::Struct(s) => match &s.fields {
            Fields::Named(named) => Ok(&named.named),
            Fields::Unnamed(_) => Err(format!(
                "{key} names a field, but `{ty}` is a tuple struct; give it named fields{hint}"
            )),
            Fields::Unit => Err(format!(
                "{key} names a field, but `{ty}` is a unit struct and has none{hint}"
            )),
        },
        Data::Enum(_) => Err(format!(
            "{key} names a field, so it needs a struct with named fields; `{ty}` is an \
             enum{hint}"
        )),
        // Reported by `check_shape`.
        Data::Union(_) => Err(format!("{key} needs a struct with named fields")),
    }
}

/// The field among `fields` named `name` (a raw identifier matches with or without its `r#`).
fn find_field<'a>(
    input: &DeriveInput,
    fields: &'a Punctuated<Field, Comma>,
    key: &str,
    name: &str,
    methods: bool,
) -> Result<&'a Ident, String> {
    let ty = ident_name(&input.ident);
    let wanted = name.strip_prefix("r#").unwrap_or(name);
    let idents = fields.iter().filter_map(|f| f.ident.as_ref());
    if let Some(found) = idents.clone().find(|i| i.unraw() == wanted) {
        return Ok(found);
    }
    let names: Vec<String> = idents.map(|i| format!("`{}`", i.unraw())).collect();
    let method_hint = if methods {
        format!("; to call a method of the task, write `{name}()`")
    } else {
        String::new()
    };
    Err(if names.is_empty() {
        format!("{key} names the field `{name}`, but `{ty}` has no fields{method_hint}")
    } else {
        format!(
            "`{ty}` has no field `{name}`; {key} names one of its fields: {}{method_hint}",
            names.join(", ")
        )
    })
}

/// Rejects unions and generic types.
fn check_shape(cx: &mut Ctxt, input: &DeriveInput) {
    if let Data::Union(u) = &input.data {
        cx.error(
            u.union_token.span,
            "`#[derive(Task)]` does not support unions; use a struct or an enum",
        );
    }
    let generics = &input.generics;
    if !generics.params.is_empty() {
        let params: Vec<String> = generics
            .params
            .iter()
            .map(|p| match p {
                syn::GenericParam::Type(t) => t.ident.to_string(),
                syn::GenericParam::Lifetime(l) => l.lifetime.to_string(),
                syn::GenericParam::Const(c) => c.ident.to_string(),
            })
            .collect();
        cx.push(syn::Error::new_spanned(
            generics,
            format!(
                "Task types cannot be generic: found `<{}>`. A task is looked up by its name \
                 when it is dequeued, so its payload type must be concrete (and `'static`); \
                 define a concrete type per task instead",
                params.join(", ")
            ),
        ));
    }
}

/// The type name as written, without a raw-identifier prefix.
fn ident_name(ident: &Ident) -> String {
    let s = ident.to_string();
    match s.strip_prefix("r#") {
        Some(rest) => rest.to_owned(),
        None => s,
    }
}

/// `EmbedImage` -> `embed_image`, `HTTPJob` -> `http_job`, `V2Task` -> `v2_task`.
///
/// A word starts at an uppercase letter that follows a lowercase letter or a digit, or that
/// ends an acronym (an uppercase letter followed by a lowercase one).
pub(crate) fn snake_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_uppercase() && i > 0 {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            let boundary =
                prev.is_lowercase() || prev.is_ascii_digit() || (prev.is_uppercase() && next_lower);
            if boundary && !out.ends_with('_') {
                out.push('_');
            }
        }
        out.extend(c.to_lowercase());
    }
    out
}

/// Queue names end up inside Redis hash tags (`{queue}`), so braces and the like are out.
pub(crate) fn validate_queue(q: &str) -> Result<(), String> {
    if q.is_empty() {
        return Err("queue name must not be empty".to_owned());
    }
    if q.len() > MAX_QUEUE_LEN {
        return Err(format!(
            "queue name is {} bytes long; the maximum is {MAX_QUEUE_LEN}",
            q.len()
        ));
    }
    if let Some(bad) = q
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-')))
    {
        return Err(format!(
            "queue name contains {bad:?}; only ASCII letters, digits, `_`, `.`, `:` and `-` \
             are allowed (queue names are used inside Redis hash tags)"
        ));
    }
    Ok(())
}

/// Task names are written into stream entries: non-empty, no whitespace or control characters.
pub(crate) fn validate_name(n: &str) -> Result<(), String> {
    if n.is_empty() {
        return Err("task name must not be empty".to_owned());
    }
    if let Some(bad) = n.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "task name contains {bad:?}; whitespace and control characters are not allowed"
        ));
    }
    Ok(())
}

/// A rate lets at least one task through per period, and the period passes.
pub(crate) fn validate_rate(r: &RateSpec) -> Result<(), String> {
    if r.count == 0 {
        return Err(
            "the count of a rate must be at least 1 (0 would never run a task); leave `rate` \
             out for no limit"
                .to_owned(),
        );
    }
    if r.per.is_zero() {
        return Err("the period of a rate must be greater than zero".to_owned());
    }
    Ok(())
}

pub(crate) fn validate_backoff(b: &BackoffSpec) -> Result<(), String> {
    match *b {
        BackoffSpec::None => Ok(()),
        BackoffSpec::Fixed(d) if d.is_zero() => Err(
            "a fixed backoff of zero retries immediately; write `backoff = \"none\"` instead"
                .to_owned(),
        ),
        BackoffSpec::Fixed(_) => Ok(()),
        BackoffSpec::Exponential { base, .. } if base.is_zero() => Err(
            "the base of an exponential backoff must be greater than zero (zero never grows); \
             write `backoff = \"none\"` to retry immediately"
                .to_owned(),
        ),
        BackoffSpec::Exponential { base, cap } if cap < base => Err(format!(
            "the cap of an exponential backoff ({}) must not be below its base ({})",
            humantime::format_duration(cap),
            humantime::format_duration(base)
        )),
        BackoffSpec::Exponential { .. } => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snake_case_names() {
        for (from, to) in [
            ("EmbedImage", "embed_image"),
            ("HTTPJob", "http_job"),
            ("Job", "job"),
            ("ABC", "abc"),
            ("SendHTTPRequestNow", "send_http_request_now"),
            ("V2Task", "v2_task"),
            ("Task2", "task2"),
            ("already_snake", "already_snake"),
            ("Mixed_Case", "mixed_case"),
            ("lowerThenUpper", "lower_then_upper"),
            ("IOError", "io_error"),
        ] {
            assert_eq!(snake_case(from), to, "{from}");
        }
    }

    #[test]
    fn queues() {
        assert!(validate_queue("images").is_ok());
        assert!(validate_queue("a-b_c.d:e9").is_ok());
        assert!(validate_queue(&"q".repeat(MAX_QUEUE_LEN)).is_ok());
        assert!(validate_queue(&"q".repeat(MAX_QUEUE_LEN + 1))
            .unwrap_err()
            .contains("maximum is 200"));
        assert!(validate_queue("").unwrap_err().contains("empty"));
        assert!(validate_queue("{images}").unwrap_err().contains("'{'"));
        assert!(validate_queue("a b").is_err());
        assert!(validate_queue("über").is_err());
    }

    #[test]
    fn names() {
        assert!(validate_name("EmbedImage").is_ok());
        assert!(validate_name("v1/embed-image").is_ok());
        assert!(validate_name("").is_err());
        assert!(validate_name("Embed Image").is_err());
        assert!(validate_name("a\u{7}").is_err());
    }

    #[test]
    fn backoffs() {
        let s = Duration::from_secs;
        assert!(validate_backoff(&BackoffSpec::None).is_ok());
        assert!(validate_backoff(&BackoffSpec::Fixed(s(1))).is_ok());
        assert!(validate_backoff(&BackoffSpec::Fixed(s(0)))
            .unwrap_err()
            .contains("\"none\""));
        let exp = |base, cap| BackoffSpec::Exponential {
            base: s(base),
            cap: s(cap),
        };
        assert!(validate_backoff(&exp(1, 1)).is_ok());
        assert!(validate_backoff(&exp(1, 600)).is_ok());
        assert!(validate_backoff(&exp(0, 1)).is_err());
        assert_eq!(
            validate_backoff(&exp(60, 5)).unwrap_err(),
            "the cap of an exponential backoff (5s) must not be below its base (1m)"
        );
    }

    fn run(input: DeriveInput) -> (TaskModel, Vec<String>) {
        let mut cx = Ctxt::new();
        let attrs = TaskAttrs::from_attrs(&mut cx, &input.attrs);
        let model = check(&mut cx, &input, attrs);
        let errors = match cx.finish() {
            Ok(()) => Vec::new(),
            Err(e) => e.into_iter().map(|e| e.to_string()).collect(),
        };
        (model, errors)
    }

    #[test]
    fn defaults() {
        let (m, errors) = run(syn::parse_quote! { struct HTTPJob { url: String } });
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(m.name, "HTTPJob");
        assert_eq!(m.queue, "http_job");
        assert!(m.max_retries.is_none() && m.timeout.is_none() && m.backoff.is_none());
        let krate = &m.krate;
        assert_eq!(quote::quote!(#krate).to_string(), ":: mq_core");
    }

    #[test]
    fn raw_identifier() {
        let (m, errors) = run(syn::parse_quote! { struct r#Type; });
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!((m.name.as_str(), m.queue.as_str()), ("Type", "type"));
    }

    #[test]
    fn non_ascii_type_name_needs_a_queue() {
        let (_, errors) = run(syn::parse_quote! { struct Größe; });
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].contains("default queue name `größe`"),
            "{errors:?}"
        );
        let (_, errors) = run(syn::parse_quote! { #[task(queue = "size")] struct Größe; });
        assert!(errors.is_empty(), "{errors:?}");
    }

    #[test]
    fn shape_and_value_errors_together() {
        let (m, errors) = run(syn::parse_quote! {
            #[task(queue = "{x}", name = "a b", timeout = "0s", concurrency = 0)]
            #[task(backoff = "exponential(1m, 1s)")]
            struct A<'a, T> { t: &'a T }
        });
        assert_eq!(errors.len(), 6, "{errors:?}");
        assert!(errors[0].starts_with("Task types cannot be generic: found `<'a, T>`"));
        assert!(errors[1].contains("task name contains ' '"));
        assert!(errors[2].contains("queue name contains '{'"));
        assert!(errors[3].contains("timeout must be greater than zero"));
        assert!(errors[4].contains("must not be below its base"));
        assert!(errors[5].contains("concurrency must be at least 1"));
        // Invalid options fall back to the defaults.
        assert!(m.timeout.is_none() && m.backoff.is_none() && m.concurrency.is_none());
    }

    #[test]
    fn partitions_range() {
        for ok in [1, 2, 1024] {
            let input: DeriveInput =
                syn::parse_str(&format!("#[task(partitions = {ok})] struct A;")).unwrap();
            let (m, errors) = run(input);
            assert!(errors.is_empty(), "{ok}: {errors:?}");
            assert_eq!(m.partitions.unwrap().value, ok);
        }
        for bad in [0, 1025, 65535, 70000] {
            let input: DeriveInput =
                syn::parse_str(&format!("#[task(partitions = {bad})] struct A;")).unwrap();
            let (m, errors) = run(input);
            assert_eq!(
                errors,
                vec![format!(
                    "partitions must be between 1 and 1024, got {bad}; leave it out for one \
                     stream (the default)"
                )]
            );
            assert!(m.partitions.is_none());
        }
    }

    const NEEDS_PARTITIONS: &str = "partition_by needs partitions = N with N > 1: with one \
        partition every task goes to the same stream; add e.g. `partitions = 8`";

    #[test]
    fn partition_by_field() {
        let (m, errors) = run(syn::parse_quote! {
            #[task(partitions = 4, partition_by = "account")]
            struct Transfer { account: String, amount: u64 }
        });
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(m.partition_by.unwrap().value, "account");

        let (m, errors) = run(syn::parse_quote! {
            #[task(partitions = 4, partition_by = "acount")]
            struct Transfer { account: String, r#type: u64 }
        });
        assert_eq!(
            errors,
            vec![
                "`Transfer` has no field `acount`; partition_by names one of its fields: \
                 `account`, `type`"
            ]
        );
        assert!(m.partition_by.is_none());
        let (_, errors) = run(syn::parse_quote! {
            #[task(partitions = 4, partition_by = "x")]
            struct Empty {}
        });
        assert_eq!(
            errors,
            vec!["partition_by names the field `x`, but `Empty` has no fields"]
        );
    }

    #[test]
    fn partition_by_needs_named_fields() {
        let (_, errors) = run(syn::parse_quote! {
            #[task(partitions = 4, partition_by = "a")]
            enum E { A { a: u8 } }
        });
        assert_eq!(
            errors,
            vec![
                "partition_by names a field, so it needs a struct with named fields; `E` is an \
                 enum"
            ]
        );
        let (_, errors) = run(syn::parse_quote! {
            #[task(partitions = 4, partition_by = "0")]
            struct T(u8);
        });
        assert!(errors[0].contains("`T` is a tuple struct"), "{errors:?}");
        let (_, errors) = run(syn::parse_quote! {
            #[task(partitions = 4, partition_by = "a")]
            struct U;
        });
        assert!(errors[0].contains("`U` is a unit struct"), "{errors:?}");
    }

    #[test]
    fn partition_by_needs_partitions() {
        for attrs in [
            quote::quote!(#[task(partition_by = "a")]),
            quote::quote!(#[task(partition_by = "a", partitions = 1)]),
        ] {
            let (m, errors) = run(syn::parse_quote! { #attrs struct A { a: u8 } });
            assert_eq!(errors, vec![NEEDS_PARTITIONS], "{attrs}");
            // The field is still checked (and kept: the build fails anyway).
            assert!(m.partition_by.is_some());
        }
        // A rejected `partitions` has its own error; no second one about it.
        for attrs in [
            quote::quote!(#[task(partition_by = "a", partitions = 0)]),
            quote::quote!(#[task(partition_by = "a", partitions = "4")]),
        ] {
            let (_, errors) = run(syn::parse_quote! { #attrs struct A { a: u8 } });
            assert_eq!(errors.len(), 1, "{attrs}: {errors:?}");
            assert!(!errors[0].contains("partition_by"), "{errors:?}");
        }
        // Both problems at once.
        let (_, errors) = run(syn::parse_quote! {
            #[task(partition_by = "b")]
            struct A { a: u8 }
        });
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert_eq!(errors[0], NEEDS_PARTITIONS);
        assert!(errors[1].contains("no field `b`"), "{errors:?}");
    }

    fn key_names(k: &Option<Spanned<Vec<KeySource>>>) -> Vec<String> {
        k.as_ref()
            .expect("key resolved")
            .value
            .iter()
            .map(|p| match p {
                KeySource::Field(f) => f.to_string(),
                KeySource::Method(m) => format!("{m}()"),
            })
            .collect()
    }

    #[test]
    fn flow_control() {
        let (m, errors) = run(syn::parse_quote! {
            #[task(unique = "shop, r#type, dedup()", unique_for = "24h", rate = "10/2s")]
            #[task(rate_key = "shop", key_concurrency = 2, concurrency_key = "slot()")]
            struct A { shop: String, r#type: u8 }
        });
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(key_names(&m.unique), ["shop", "r#type", "dedup()"]);
        assert_eq!(m.unique_for.unwrap().value, Duration::from_secs(86400));
        let rate = m.rate.unwrap().value;
        assert_eq!((rate.count, rate.per), (10, Duration::from_secs(2)));
        assert_eq!(key_names(&m.rate_key), ["shop"]);
        assert_eq!(m.key_concurrency.unwrap().value, 2);
        assert_eq!(key_names(&m.concurrency_key), ["slot()"]);

        // Methods work for any type.
        let (m, errors) = run(syn::parse_quote! {
            #[task(unique = "key()", rate = "1/s", rate_key = "key()")]
            enum E { A }
        });
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(key_names(&m.unique), ["key()"]);
    }

    #[test]
    fn flow_control_values_out_of_range() {
        let (m, errors) = run(syn::parse_quote! {
            #[task(unique = "a", unique_for = "0s", rate = "0/s")]
            #[task(key_concurrency = 0, concurrency_key = "a")]
            struct A { a: u8 }
        });
        assert_eq!(
            errors,
            vec![
                "unique_for must be greater than zero; leave it out to release the key as soon \
                 as the task succeeds",
                "the count of a rate must be at least 1 (0 would never run a task); leave \
                 `rate` out for no limit",
                "key_concurrency must be at least 1; leave it and `concurrency_key` out for no \
                 per-key limit",
            ]
        );
        assert!(m.unique_for.is_none() && m.rate.is_none() && m.key_concurrency.is_none());
        let (_, errors) = run(syn::parse_quote! { #[task(rate = "5/0ms")] struct A; });
        assert_eq!(
            errors,
            vec!["the period of a rate must be greater than zero"]
        );
    }

    const NEEDS_UNIQUE: &str = "unique_for needs `unique`: it keeps a unique task's key for a \
        while after the task succeeded; add e.g. `unique = \"product_id\"`";
    const NEEDS_RATE: &str = "rate_key needs `rate`: each value of the key gets its own limit \
        of `rate`; add e.g. `rate = \"10/s\"`";
    const NEEDS_CONCURRENCY_KEY: &str = "key_concurrency needs `concurrency_key`, the key whose \
        running tasks it limits; add e.g. `concurrency_key = \"account\"`";
    const NEEDS_KEY_CONCURRENCY: &str = "concurrency_key needs `key_concurrency = N`, how many \
        tasks of one key value may run at once; add e.g. `key_concurrency = 2`";

    #[test]
    fn flow_control_dependencies() {
        let (_, errors) = run(syn::parse_quote! {
            #[task(unique_for = "1h", rate_key = "a", key_concurrency = 3)]
            struct A { a: u8 }
        });
        assert_eq!(
            errors,
            vec![NEEDS_UNIQUE, NEEDS_RATE, NEEDS_CONCURRENCY_KEY]
        );
        let (m, errors) = run(syn::parse_quote! {
            #[task(concurrency_key = "a")]
            struct A { a: u8 }
        });
        assert_eq!(errors, vec![NEEDS_KEY_CONCURRENCY]);
        // The key is still resolved (and kept: the build fails anyway).
        assert!(m.concurrency_key.is_some());
        // A key given with a rejected value has its own error; no second one about it.
        let (_, errors) = run(syn::parse_quote! {
            #[task(unique = "", unique_for = "1h", rate = "x", rate_key = "a")]
            #[task(key_concurrency = "2", concurrency_key = "a")]
            struct A { a: u8 }
        });
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(errors.iter().all(|e| !e.contains("needs")), "{errors:?}");
    }

    #[test]
    fn key_fields() {
        let (m, errors) = run(syn::parse_quote! {
            #[task(unique = "shop, skew, dedup(), sco")]
            struct A { shop: String, sku: String }
        });
        assert_eq!(
            errors,
            vec![
                "`A` has no field `skew`; unique names one of its fields: `shop`, `sku`; to \
                 call a method of the task, write `skew()`",
                "`A` has no field `sco`; unique names one of its fields: `shop`, `sku`; to call \
                 a method of the task, write `sco()`",
            ]
        );
        assert!(m.unique.is_none());
        let (_, errors) = run(syn::parse_quote! {
            #[task(rate = "1/s", rate_key = "a")]
            struct Empty {}
        });
        assert_eq!(
            errors,
            vec![
                "rate_key names the field `a`, but `Empty` has no fields; to call a method of \
                 the task, write `a()`"
            ]
        );
        // A type without named fields: one error per attribute, however many fields it names.
        let (_, errors) = run(syn::parse_quote! {
            #[task(unique = "a, b, c()", key_concurrency = 1, concurrency_key = "a")]
            enum E { A { a: u8, b: u8 } }
        });
        assert_eq!(
            errors,
            vec![
                "unique names a field, so it needs a struct with named fields; `E` is an enum; \
                 a method works for any type, e.g. `unique = \"dedup_key()\"`",
                "concurrency_key names a field, so it needs a struct with named fields; `E` is \
                 an enum; a method works for any type, e.g. `concurrency_key = \"dedup_key()\"`",
            ]
        );
        let (_, errors) = run(syn::parse_quote! { #[task(unique = "0")] struct T(u8); });
        assert_eq!(
            errors,
            vec![
                "unique names a field, but `T` is a tuple struct; give it named fields; a method \
                 works for any type, e.g. `unique = \"dedup_key()\"`"
            ]
        );
        let (_, errors) = run(syn::parse_quote! { #[task(unique = "a")] struct U; });
        assert!(errors[0].contains("`U` is a unit struct"), "{errors:?}");
    }

    #[test]
    fn unions_are_rejected() {
        let (_, errors) = run(syn::parse_quote! { union U { a: u32, b: f32 } });
        assert_eq!(
            errors,
            vec!["`#[derive(Task)]` does not support unions; use a struct or an enum"]
        );
    }
}
