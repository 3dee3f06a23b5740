//! Parsing of `#[task(...)]` attributes into [`TaskAttrs`].
//!
//! This module only checks *syntax and literal types*: each key is known and given once, each
//! value is a literal of the right kind, durations and backoff strings parse. Semantic rules
//! (allowed queue characters, non-zero durations, `cap >= base`, ...) live in `check.rs`.
//!
//! Every error is pushed into the [`Ctxt`] and parsing carries on, so one build reports every
//! mistake.

use std::time::Duration;

use proc_macro2::{Span, TokenTree};
use syn::ext::IdentExt as _;
use syn::meta::ParseNestedMeta;
use syn::spanned::Spanned as _;
use syn::{Attribute, Expr, Ident, Lit, LitInt, LitStr};

use crate::Ctxt;

/// The keys accepted inside `#[task(...)]`, in the order they are documented.
pub(crate) const KEYS: &[&str] = &[
    "queue",
    "name",
    "max_retries",
    "timeout",
    "backoff",
    "concurrency",
    "partitions",
    "partition_by",
    "unique",
    "unique_for",
    "rate",
    "rate_key",
    "key_concurrency",
    "concurrency_key",
    "priority",
    "result_ttl",
    "events",
    "crate",
];

/// A value together with the span of the tokens it came from.
#[derive(Debug, Clone)]
pub(crate) struct Spanned<T> {
    pub(crate) value: T,
    pub(crate) span: Span,
}

impl<T> Spanned<T> {
    pub(crate) fn new(value: T, span: Span) -> Self {
        Self { value, span }
    }
}

/// A parsed `backoff = "..."` value (not yet validated: durations may be zero, cap < base).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BackoffSpec {
    /// `"none"`
    None,
    /// `"fixed(5s)"`
    Fixed(Duration),
    /// `"exponential(1s, 10m)"`
    Exponential { base: Duration, cap: Duration },
}

/// A parsed `rate = "..."` value (not yet validated: count and period may be zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RateSpec {
    pub(crate) count: u32,
    pub(crate) per: Duration,
}

/// One entry of a key given by `unique`, `rate_key` or `concurrency_key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KeyPart {
    /// `"account"`: a field, by name as written (whether it exists is checked in `check.rs`).
    Field(String),
    /// `"dedup_key()"`: a method of the task taking `&self`.
    Method(Ident),
}

/// Everything given in the `#[task(...)]` attributes of one type; `None` = key not given (or
/// given with an invalid value, in which case an error was recorded).
#[derive(Default)]
pub(crate) struct TaskAttrs {
    pub(crate) queue: Option<Spanned<String>>,
    pub(crate) name: Option<Spanned<String>>,
    pub(crate) max_retries: Option<Spanned<u32>>,
    /// `Some(None)` is `timeout = "none"`.
    pub(crate) timeout: Option<Spanned<Option<Duration>>>,
    pub(crate) backoff: Option<Spanned<BackoffSpec>>,
    pub(crate) concurrency: Option<Spanned<usize>>,
    /// A `u16` literal, read wider so that `check.rs` reports every value out of its range
    /// (1 to `MAX_PARTITIONS`) with the same message.
    pub(crate) partitions: Option<Spanned<u64>>,
    /// The field name as written in the string; whether the field exists is checked in
    /// `check.rs`.
    pub(crate) partition_by: Option<Spanned<String>>,
    pub(crate) unique: Option<Spanned<Vec<KeyPart>>>,
    pub(crate) unique_for: Option<Spanned<Duration>>,
    pub(crate) result_ttl: Option<Spanned<Duration>>,
    /// `events` (a bare flag).
    pub(crate) events: Option<Span>,
    pub(crate) rate: Option<Spanned<RateSpec>>,
    pub(crate) rate_key: Option<Spanned<Vec<KeyPart>>>,
    /// A `u32` literal; zero is rejected in `check.rs`.
    pub(crate) key_concurrency: Option<Spanned<u32>>,
    pub(crate) concurrency_key: Option<Spanned<Vec<KeyPart>>>,
    /// `"high"`, `"normal"` or `"low"`, checked here.
    pub(crate) priority: Option<Spanned<String>>,
    pub(crate) krate: Option<Spanned<syn::Path>>,
    /// Keys seen so far, valid value or not, to report repetitions.
    seen: Vec<String>,
}

impl TaskAttrs {
    /// Parses every `#[task(...)]` among `attrs`, recording errors in `cx`.
    pub(crate) fn from_attrs(cx: &mut Ctxt, attrs: &[Attribute]) -> TaskAttrs {
        let mut out = TaskAttrs::default();
        for attr in attrs.iter().filter(|a| a.path().is_ident("task")) {
            let res = attr.parse_nested_meta(|meta| {
                if let Err(e) = out.parse_entry(cx, &meta) {
                    cx.push(e);
                    skip_value(&meta)?;
                }
                Ok(())
            });
            if let Err(e) = res {
                cx.push(e);
            }
        }
        out
    }

    /// Whether `key` was given, with a valid value or not.
    pub(crate) fn given(&self, key: &str) -> bool {
        self.seen.iter().any(|k| k == key)
    }

    /// Parses one `key = value` entry. Returns `Err` only when the value could not be
    /// consumed; the caller then records it and skips to the next entry.
    fn parse_entry(&mut self, cx: &mut Ctxt, meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
        let key = match meta.path.get_ident() {
            Some(ident) => ident.to_string(),
            None => String::new(),
        };
        let key_span = meta.path.span();
        if !KEYS.contains(&key.as_str()) {
            let shown = path_to_string(&meta.path);
            cx.push(syn::Error::new(
                key_span,
                format!(
                    "unknown task attribute `{shown}`; expected one of: {}",
                    KEYS.join(", ")
                ),
            ));
            return skip_value(meta);
        }
        if self.seen.contains(&key) {
            cx.push(syn::Error::new(
                key_span,
                format!("duplicate task attribute `{key}`"),
            ));
            return skip_value(meta);
        }
        self.seen.push(key.clone());

        if key == "events" {
            if !meta.input.is_empty() && !meta.input.peek(syn::Token![,]) {
                cx.push(syn::Error::new(
                    key_span,
                    "`events` is a flag: write `#[task(events)]`",
                ));
                return skip_value(meta);
            }
            self.events = Some(key_span);
            return Ok(());
        }
        let value: Expr = meta.value()?.parse()?;
        match key.as_str() {
            "queue" => self.queue = lit_str(cx, &key, &value).map(|s| spanned_string(&s)),
            "name" => self.name = lit_str(cx, &key, &value).map(|s| spanned_string(&s)),
            "max_retries" => {
                self.max_retries = lit_int(cx, &key, &value, "u32")
                    .and_then(|lit| record(cx, parse_int::<u32>(&lit, "u32")));
            }
            "concurrency" => {
                self.concurrency = lit_int(cx, &key, &value, "usize")
                    .and_then(|lit| record(cx, parse_int::<usize>(&lit, "usize")));
            }
            "partitions" => {
                self.partitions = lit_int(cx, &key, &value, "u16")
                    .and_then(|lit| record(cx, parse_int::<u64>(&lit, "u64")));
            }
            "partition_by" => {
                self.partition_by = lit_str(cx, &key, &value).map(|s| spanned_string(&s));
            }
            "priority" => {
                self.priority = lit_str(cx, &key, &value).and_then(|lit| {
                    let v = lit.value();
                    let ok = matches!(v.as_str(), "high" | "normal" | "low");
                    let parsed = if ok {
                        Ok(Spanned::new(v, lit.span()))
                    } else {
                        Err(syn::Error::new(
                            lit.span(),
                            format!(
                                "unknown priority {v:?}; expected \"high\", \"normal\" or \"low\""
                            ),
                        ))
                    };
                    record(cx, parsed)
                });
            }
            "unique" => self.unique = key_spec(cx, &key, &value),
            "rate_key" => self.rate_key = key_spec(cx, &key, &value),
            "concurrency_key" => self.concurrency_key = key_spec(cx, &key, &value),
            "key_concurrency" => {
                self.key_concurrency = lit_int(cx, &key, &value, "u32")
                    .and_then(|lit| record(cx, parse_int::<u32>(&lit, "u32")));
            }
            "result_ttl" => {
                self.result_ttl = lit_str(cx, &key, &value).and_then(|lit| {
                    let parsed = parse_duration(&lit.value())
                        .map_err(|e| {
                            format!("{e}; expected a duration such as \"10m\", \"1h\" or \"7days\"")
                        })
                        .map_err(|msg| syn::Error::new(lit.span(), msg));
                    record(cx, parsed.map(|d| Spanned::new(d, lit.span())))
                });
            }
            "unique_for" => {
                self.unique_for = lit_str(cx, &key, &value).and_then(|lit| {
                    let parsed = parse_duration(&lit.value())
                        .map_err(|e| {
                            format!(
                                "{e}; expected a duration such as \"10m\", \"24h\" or \"7days\""
                            )
                        })
                        .map_err(|msg| syn::Error::new(lit.span(), msg));
                    record(cx, parsed.map(|d| Spanned::new(d, lit.span())))
                });
            }
            "rate" => {
                self.rate = lit_str(cx, &key, &value).and_then(|lit| {
                    let parsed =
                        parse_rate(&lit.value()).map_err(|msg| syn::Error::new(lit.span(), msg));
                    record(cx, parsed.map(|r| Spanned::new(r, lit.span())))
                });
            }
            "timeout" => {
                self.timeout = lit_str(cx, &key, &value).and_then(|lit| {
                    let parsed =
                        parse_timeout(&lit.value()).map_err(|msg| syn::Error::new(lit.span(), msg));
                    record(cx, parsed.map(|t| Spanned::new(t, lit.span())))
                });
            }
            "backoff" => {
                self.backoff = lit_str(cx, &key, &value).and_then(|lit| {
                    let parsed =
                        parse_backoff(&lit.value()).map_err(|msg| syn::Error::new(lit.span(), msg));
                    record(cx, parsed.map(|b| Spanned::new(b, lit.span())))
                });
            }
            "crate" => {
                self.krate = lit_str(cx, &key, &value).and_then(|lit| {
                    let parsed = lit.parse_with(syn::Path::parse_mod_style).map_err(|e| {
                        syn::Error::new(
                            lit.span(),
                            format!(
                                "invalid `crate` path {:?}: {e}; expected a path such as \
                                     \"::mq_core\" or \"my_reexport::mq_core\"",
                                lit.value()
                            ),
                        )
                    });
                    record(cx, parsed.map(|p| Spanned::new(p, lit.span())))
                });
            }
            _ => unreachable!("key checked against KEYS above"),
        }
        Ok(())
    }
}

/// Records the error of `res` (if any) and turns it into an `Option`.
fn record<T>(cx: &mut Ctxt, res: syn::Result<T>) -> Option<T> {
    res.map_err(|e| cx.push(e)).ok()
}

/// A `unique`, `rate_key` or `concurrency_key` value, parsed with [`parse_key`].
fn key_spec(cx: &mut Ctxt, key: &str, value: &Expr) -> Option<Spanned<Vec<KeyPart>>> {
    lit_str(cx, key, value).and_then(|lit| {
        let parsed = parse_key(key, &lit.value()).map_err(|msg| syn::Error::new(lit.span(), msg));
        record(cx, parsed.map(|k| Spanned::new(k, lit.span())))
    })
}

fn spanned_string(lit: &LitStr) -> Spanned<String> {
    Spanned::new(lit.value(), lit.span())
}

fn path_to_string(path: &syn::Path) -> String {
    let mut s = String::new();
    if path.leading_colon.is_some() {
        s.push_str("::");
    }
    let segs: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
    s.push_str(&segs.join("::"));
    s
}

/// Consumes the rest of the current entry (`= value` or `(...)`) up to the next top-level
/// comma, so that parsing can continue with the next entry.
fn skip_value(meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
    meta.input.step(|cursor| {
        let mut rest = *cursor;
        while let Some((tt, next)) = rest.token_tree() {
            if let TokenTree::Punct(p) = &tt {
                if p.as_char() == ',' {
                    break;
                }
            }
            rest = next;
        }
        Ok(((), rest))
    })
}

/// The literal inside `expr`, looking through invisible groups (from `macro_rules!`).
fn as_lit(expr: &Expr) -> Option<&Lit> {
    match expr {
        Expr::Lit(e) if e.attrs.is_empty() => Some(&e.lit),
        Expr::Group(g) => as_lit(&g.expr),
        _ => None,
    }
}

fn lit_str(cx: &mut Ctxt, key: &str, value: &Expr) -> Option<LitStr> {
    match as_lit(value) {
        Some(Lit::Str(s)) => Some(s.clone()),
        _ => {
            let hint = match key {
                "queue" => "`queue = \"images\"`",
                "name" => "`name = \"EmbedImage\"`",
                "timeout" => "`timeout = \"30s\"` or `timeout = \"none\"`",
                "backoff" => "`backoff = \"exponential(1s, 10m)\"`",
                "partition_by" => "`partition_by = \"account\"` (a field of the struct)",
                "unique" => "`unique = \"product_id\"`, `unique = \"shop, sku\"` or `unique = \"dedup_key()\"`",
                "rate_key" => "`rate_key = \"account\"`",
                "concurrency_key" => "`concurrency_key = \"account\"`",
                "unique_for" => "`unique_for = \"24h\"`",
                "result_ttl" => "`result_ttl = \"1h\"`",
                "rate" => "`rate = \"100/s\"`",
                "priority" => "`priority = \"high\"`, `\"normal\"` or `\"low\"`",
                "crate" => "`crate = \"::mq_core\"`",
                _ => "a string literal",
            };
            cx.push(syn::Error::new_spanned(
                value,
                format!("expected a string literal for `{key}`, e.g. {hint}"),
            ));
            None
        }
    }
}

fn lit_int(cx: &mut Ctxt, key: &str, value: &Expr, ty: &str) -> Option<LitInt> {
    match as_lit(value) {
        Some(Lit::Int(i)) if i.suffix().is_empty() || i.suffix() == ty => Some(i.clone()),
        Some(Lit::Int(i)) => {
            cx.push(syn::Error::new(
                i.span(),
                format!("`{key}` is a {ty}; remove the `{}` suffix", i.suffix()),
            ));
            None
        }
        _ => {
            cx.push(syn::Error::new_spanned(
                value,
                format!(
                    "expected an unsigned integer literal ({ty}) for `{key}`, e.g. `{key} = 5`"
                ),
            ));
            None
        }
    }
}

fn parse_int<N>(lit: &LitInt, ty: &str) -> syn::Result<Spanned<N>>
where
    N: std::str::FromStr,
    N::Err: std::fmt::Display,
{
    lit.base10_parse::<N>()
        .map(|n| Spanned::new(n, lit.span()))
        .map_err(|_| {
            syn::Error::new(
                lit.span(),
                format!("`{}` does not fit in {ty}", lit.base10_digits()),
            )
        })
}

/// Parses a human duration such as `"30s"`, `"2m"`, `"1h 30m"` or `"500ms"`.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    humantime::parse_duration(t).map_err(|e| format!("invalid duration `{t}`: {e}"))
}

/// Parses a `timeout` value: `"none"` or a human duration. Zero is rejected later.
pub(crate) fn parse_timeout(s: &str) -> Result<Option<Duration>, String> {
    if s.trim() == "none" {
        return Ok(None);
    }
    parse_duration(s).map(Some).map_err(|e| {
        format!("{e}; expected a duration such as \"30s\", \"2m\", \"1h 30m\" or \"none\"")
    })
}

const BACKOFF_FORMS: &str =
    "expected \"none\", \"fixed(<duration>)\" or \"exponential(<base>, <cap>)\", e.g. \"fixed(5s)\" or \"exponential(1s, 10m)\"";

/// Parses a `backoff` value: `"none"`, `"fixed(5s)"` or `"exponential(1s, 10m)"`, tolerating
/// whitespace anywhere between the parts.
pub(crate) fn parse_backoff(s: &str) -> Result<BackoffSpec, String> {
    let t = s.trim();
    if t == "none" {
        return Ok(BackoffSpec::None);
    }
    let bad_syntax = || format!("invalid backoff `{t}`: {BACKOFF_FORMS}");
    let (head, rest) = t.split_once('(').ok_or_else(bad_syntax)?;
    let inner = rest.trim_end().strip_suffix(')').ok_or_else(bad_syntax)?;
    if inner.contains(['(', ')']) {
        return Err(bad_syntax());
    }
    let dur = |part: &str| parse_duration(part).map_err(|e| format!("in backoff `{t}`: {e}"));
    match head.trim() {
        "fixed" => {
            if inner.contains(',') {
                return Err(format!(
                    "invalid backoff `{t}`: `fixed` takes one duration, e.g. \"fixed(5s)\""
                ));
            }
            Ok(BackoffSpec::Fixed(dur(inner)?))
        }
        "exponential" => {
            let parts: Vec<&str> = inner.split(',').collect();
            match parts.as_slice() {
                [base, cap] => Ok(BackoffSpec::Exponential {
                    base: dur(base)?,
                    cap: dur(cap)?,
                }),
                _ => Err(format!(
                    "invalid backoff `{t}`: `exponential` takes two durations, a base and a \
                     cap, e.g. \"exponential(1s, 10m)\""
                )),
            }
        }
        _ => Err(bad_syntax()),
    }
}

pub(crate) const RATE_FORMS: &str = "expected \"<count>/<period>\", e.g. \"100/s\", \"10/m\", \
     \"1000/h\", \"10/2s\" or \"5/1500ms\" (a unit alone means one of it)";

/// Parses a `rate` value: `"<count>/<period>"`, where the count is a whole number (`u32`) and
/// the period a unit alone (`"s"`, `"m"`, `"h"`, ...: one of it) or a human duration
/// (`"2s"`, `"1500ms"`, `"1h 30m"`). Whitespace around the parts is ignored. Zero counts and
/// periods are rejected later.
pub(crate) fn parse_rate(s: &str) -> Result<RateSpec, String> {
    let t = s.trim();
    let (count, per) = t
        .split_once('/')
        .ok_or_else(|| format!("invalid rate `{t}`: {RATE_FORMS}"))?;
    let (count, per) = (count.trim(), per.trim());
    if count.is_empty() || !count.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "invalid rate `{t}`: the count `{count}` is not a whole number; {RATE_FORMS}"
        ));
    }
    let count = count
        .parse::<u32>()
        .map_err(|_| format!("invalid rate `{t}`: the count `{count}` does not fit in u32"))?;
    if per.is_empty() {
        return Err(format!(
            "invalid rate `{t}`: the period is missing; {RATE_FORMS}"
        ));
    }
    let full = if per.starts_with(|c: char| c.is_ascii_alphabetic()) {
        format!("1{per}")
    } else {
        per.to_owned()
    };
    let per = humantime::parse_duration(&full).map_err(|e| {
        format!("invalid rate `{t}`: the period `{per}` is not a duration ({e}); {RATE_FORMS}")
    })?;
    Ok(RateSpec { count, per })
}

/// The names of the methods the derive implements from key attributes; naming one of them as
/// the key's own method would call itself forever.
const KEY_METHODS: &[&str] = &["unique_key", "rate_key", "concurrency_key", "partition_key"];

/// Parses a `unique`, `rate_key` or `concurrency_key` value (`key` is which, for messages):
/// entries separated by commas, each a field name (`"account"`) or a method call
/// (`"dedup_key()"`). Whitespace around entries is ignored; an entry may not be empty or
/// repeated. Whether the fields exist is checked later.
pub(crate) fn parse_key(key: &str, s: &str) -> Result<Vec<KeyPart>, String> {
    let t = s.trim();
    let forms = format!(
        "expected fields or `method()`s of the task separated by commas, e.g. \
         `{key} = \"account\"`, `{key} = \"shop, sku\"` or `{key} = \"dedup_key()\"`"
    );
    if t.is_empty() {
        return Err(format!("`{key}` is empty; {forms}"));
    }
    let mut parts: Vec<KeyPart> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    for entry in t.split(',') {
        let entry = entry.trim();
        if entry.is_empty() {
            return Err(format!(
                "invalid `{key}` \"{t}\": an entry is empty; {forms}"
            ));
        }
        let (part, name) = match entry.strip_suffix("()") {
            Some(method) => {
                let method = method.trim_end();
                let ident = syn::parse_str::<Ident>(method).map_err(|_| {
                    format!("invalid `{key}` \"{t}\": `{method}` is not a method name; {forms}")
                })?;
                let name = ident.unraw().to_string();
                if KEY_METHODS.contains(&name.as_str()) {
                    return Err(format!(
                        "`{key}` cannot call `{name}()`: the derive implements `Task::{name}` \
                         itself; give your method another name, e.g. `dedup_key()`"
                    ));
                }
                (KeyPart::Method(ident), format!("{name}()"))
            }
            None => {
                let name = entry.strip_prefix("r#").unwrap_or(entry).to_owned();
                (KeyPart::Field(entry.to_owned()), name)
            }
        };
        if names.contains(&name) {
            return Err(format!("invalid `{key}` \"{t}\": `{name}` is named twice"));
        }
        names.push(name);
        parts.push(part);
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(secs(30)));
        assert_eq!(parse_duration("2m"), Ok(secs(120)));
        assert_eq!(parse_duration("1h 30m"), Ok(secs(5400)));
        assert_eq!(parse_duration(" 500ms "), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        let err = parse_duration("soon").unwrap_err();
        assert!(err.contains("invalid duration `soon`"), "{err}");
        assert!(err.contains("expected number at 0"), "{err}");
        assert!(parse_duration("").is_err());
        assert!(parse_duration("30")
            .unwrap_err()
            .contains("time unit needed"));
    }

    #[test]
    fn timeouts() {
        assert_eq!(parse_timeout("none"), Ok(None));
        assert_eq!(parse_timeout(" none "), Ok(None));
        assert_eq!(parse_timeout("2m"), Ok(Some(secs(120))));
        assert_eq!(parse_timeout("0s"), Ok(Some(Duration::ZERO)));
        let err = parse_timeout("soon").unwrap_err();
        assert!(err.contains("expected number at 0"), "{err}");
        assert!(err.contains("\"none\""), "{err}");
        assert!(parse_timeout("None").is_err());
    }

    #[test]
    fn backoff_forms() {
        assert_eq!(parse_backoff("none"), Ok(BackoffSpec::None));
        assert_eq!(parse_backoff("  none "), Ok(BackoffSpec::None));
        assert_eq!(parse_backoff("fixed(5s)"), Ok(BackoffSpec::Fixed(secs(5))));
        assert_eq!(
            parse_backoff(" fixed ( 1h 30m ) "),
            Ok(BackoffSpec::Fixed(secs(5400)))
        );
        assert_eq!(
            parse_backoff("fixed(0s)"),
            Ok(BackoffSpec::Fixed(Duration::ZERO))
        );
        let exp = BackoffSpec::Exponential {
            base: secs(1),
            cap: secs(600),
        };
        assert_eq!(parse_backoff("exponential(1s, 10m)"), Ok(exp));
        assert_eq!(parse_backoff("exponential(1s,10m)"), Ok(exp));
        assert_eq!(parse_backoff("  exponential  (  1s ,  10m  )  "), Ok(exp));
        assert_eq!(
            parse_backoff("exponential(500ms, 1m 30s)"),
            Ok(BackoffSpec::Exponential {
                base: Duration::from_millis(500),
                cap: secs(90),
            })
        );
    }

    #[test]
    fn backoff_errors() {
        for bad in [
            "",
            "fast",
            "fixed",
            "fixed 5s",
            "fixed(5s",
            "fixed5s)",
            "fixed(5s) extra",
            "linear(1s)",
            "Fixed(5s)",
            "exponential((1s), 2s)",
        ] {
            let err = parse_backoff(bad).unwrap_err();
            assert!(err.contains("exponential(<base>, <cap>)"), "{bad:?}: {err}");
        }
        let err = parse_backoff("fixed(1s, 2s)").unwrap_err();
        assert!(err.contains("`fixed` takes one duration"), "{err}");
        let err = parse_backoff("exponential(1s)").unwrap_err();
        assert!(err.contains("takes two durations"), "{err}");
        let err = parse_backoff("exponential(1s, 2s, 3s)").unwrap_err();
        assert!(err.contains("takes two durations"), "{err}");
        let err = parse_backoff("exponential(1s, soon)").unwrap_err();
        assert!(err.contains("invalid duration `soon`"), "{err}");
        let err = parse_backoff("fixed()").unwrap_err();
        assert!(err.contains("value was empty"), "{err}");
    }

    fn parse(input: syn::DeriveInput) -> (TaskAttrs, Vec<String>) {
        let mut cx = Ctxt::new();
        let attrs = TaskAttrs::from_attrs(&mut cx, &input.attrs);
        let errors = match cx.finish() {
            Ok(()) => Vec::new(),
            Err(e) => e.into_iter().map(|e| e.to_string()).collect(),
        };
        (attrs, errors)
    }

    #[test]
    fn all_keys_across_several_attributes() {
        let (attrs, errors) = parse(syn::parse_quote! {
            #[derive(Debug)]
            #[task(queue = "images", name = "Embed", max_retries = 5)]
            #[doc = "not ours"]
            #[task(timeout = "2m", backoff = "fixed(5s)")]
            #[task(concurrency = 8, crate = "renamed::mq")]
            #[task(partitions = 16, partition_by = "account")]
            struct EmbedImage;
        });
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(attrs.queue.unwrap().value, "images");
        assert_eq!(attrs.name.unwrap().value, "Embed");
        assert_eq!(attrs.max_retries.unwrap().value, 5);
        assert_eq!(attrs.timeout.unwrap().value, Some(secs(120)));
        assert_eq!(attrs.backoff.unwrap().value, BackoffSpec::Fixed(secs(5)));
        assert_eq!(attrs.concurrency.unwrap().value, 8);
        assert_eq!(attrs.partitions.unwrap().value, 16);
        assert_eq!(attrs.partition_by.unwrap().value, "account");
        assert_eq!(path_to_string(&attrs.krate.unwrap().value), "renamed::mq");
    }

    #[test]
    fn nothing_given() {
        let (attrs, errors) = parse(syn::parse_quote! { #[task()] struct A; });
        assert!(errors.is_empty(), "{errors:?}");
        assert!(attrs.queue.is_none() && attrs.krate.is_none() && attrs.timeout.is_none());
    }

    #[test]
    fn every_error_is_collected() {
        let (attrs, errors) = parse(syn::parse_quote! {
            #[task(retries = 3, queue = "a", queue = "b", max_retries = "5", timeout = 30)]
            #[task(backoff = "soonish", concurrency = 5u8, max_retries = 4294967296)]
            #[task(x::y(1, 2), name = "ok", max_retries = 1)]
            struct A;
        });
        assert_eq!(
            errors,
            vec![
                "unknown task attribute `retries`; expected one of: queue, name, max_retries, \
                 timeout, backoff, concurrency, partitions, partition_by, unique, unique_for, rate, \
                 rate_key, key_concurrency, concurrency_key, priority, result_ttl, events, crate",
                "duplicate task attribute `queue`",
                "expected an unsigned integer literal (u32) for `max_retries`, e.g. \
                 `max_retries = 5`",
                "expected a string literal for `timeout`, e.g. `timeout = \"30s\"` or \
                 `timeout = \"none\"`",
                &format!("invalid backoff `soonish`: {BACKOFF_FORMS}"),
                "`concurrency` is a usize; remove the `u8` suffix",
                "duplicate task attribute `max_retries`",
                "unknown task attribute `x::y`; expected one of: queue, name, max_retries, \
                 timeout, backoff, concurrency, partitions, partition_by, unique, unique_for, rate, \
                 rate_key, key_concurrency, concurrency_key, priority, result_ttl, events, crate",
                "duplicate task attribute `max_retries`",
            ]
        );
        // Valid entries are kept even next to invalid ones; invalid ones are dropped, and a
        // repetition of a key whose first value was invalid is still a duplicate.
        assert!(attrs.max_retries.is_none());
        assert_eq!(attrs.queue.unwrap().value, "a");
        assert_eq!(attrs.name.unwrap().value, "ok");
    }

    #[test]
    fn integer_out_of_range() {
        let (_, errors) = parse(syn::parse_quote! { #[task(max_retries = 4294967296)] struct A; });
        assert_eq!(errors, vec!["`4294967296` does not fit in u32"]);
        let (attrs, errors) =
            parse(syn::parse_quote! { #[task(max_retries = 4294967295u32)] struct A; });
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(attrs.max_retries.unwrap().value, u32::MAX);
    }

    #[test]
    fn partition_values() {
        // Range and field existence are checked in check.rs; here only literal types.
        let (attrs, errors) =
            parse(syn::parse_quote! { #[task(partitions = 0, partition_by = "x y")] struct A; });
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(attrs.partitions.unwrap().value, 0);
        assert_eq!(attrs.partition_by.unwrap().value, "x y");
        let (attrs, errors) = parse(syn::parse_quote! {
            #[task(partitions = 18446744073709551616, partition_by = account)]
            #[task(partitions = 4u8)]
            struct A;
        });
        assert_eq!(
            errors,
            vec![
                "`18446744073709551616` does not fit in u64",
                "expected a string literal for `partition_by`, e.g. `partition_by = \"account\"` \
                 (a field of the struct)",
                "duplicate task attribute `partitions`",
            ]
        );
        assert!(attrs.partitions.is_none() && attrs.partition_by.is_none());
        assert!(attrs.given("partitions") && attrs.given("partition_by"));
        assert!(!attrs.given("queue"));
        let (_, errors) = parse(syn::parse_quote! { #[task(partitions = "4")] struct A; });
        assert_eq!(
            errors,
            vec!["expected an unsigned integer literal (u16) for `partitions`, e.g. `partitions = 5`"]
        );
        let (_, errors) = parse(syn::parse_quote! { #[task(partitions = 4u8)] struct A; });
        assert_eq!(
            errors,
            vec!["`partitions` is a u16; remove the `u8` suffix"]
        );
    }

    #[test]
    fn rates() {
        let rate = |count, per| Ok(RateSpec { count, per });
        assert_eq!(parse_rate("100/s"), rate(100, secs(1)));
        assert_eq!(parse_rate(" 10 / m "), rate(10, secs(60)));
        assert_eq!(parse_rate("1000/h"), rate(1000, secs(3600)));
        assert_eq!(parse_rate("3/day"), rate(3, secs(86400)));
        assert_eq!(parse_rate("10/2s"), rate(10, secs(2)));
        assert_eq!(parse_rate("5/1500ms"), rate(5, Duration::from_millis(1500)));
        assert_eq!(parse_rate("1/1h 30m"), rate(1, secs(5400)));
        assert_eq!(parse_rate("1/ms"), rate(1, Duration::from_millis(1)));
        // Zero is syntax, rejected by check.rs.
        assert_eq!(parse_rate("0/s"), rate(0, secs(1)));
        assert_eq!(parse_rate("4294967295/s"), rate(u32::MAX, secs(1)));
        assert_eq!(parse_rate("1/0s"), rate(1, Duration::ZERO));

        assert_eq!(
            parse_rate("100").unwrap_err(),
            format!("invalid rate `100`: {RATE_FORMS}")
        );
        for (bad, count) in [
            ("x/s", "x"),
            ("/s", ""),
            ("-1/s", "-1"),
            ("+5/s", "+5"),
            ("1.5/s", "1.5"),
        ] {
            assert_eq!(
                parse_rate(bad).unwrap_err(),
                format!(
                    "invalid rate `{bad}`: the count `{count}` is not a whole number; {RATE_FORMS}"
                )
            );
        }
        assert_eq!(
            parse_rate("4294967296/s").unwrap_err(),
            "invalid rate `4294967296/s`: the count `4294967296` does not fit in u32"
        );
        assert_eq!(
            parse_rate("100/").unwrap_err(),
            format!("invalid rate `100/`: the period is missing; {RATE_FORMS}")
        );
        let err = parse_rate("100/soon").unwrap_err();
        assert!(
            err.starts_with("invalid rate `100/soon`: the period `soon` is not a duration (unknown time unit \"soon\""),
            "{err}"
        );
        let err = parse_rate("100/1").unwrap_err();
        assert!(err.contains("time unit needed"), "{err}");
        assert!(parse_rate("1/2/s").is_err());
    }

    #[test]
    fn keys() {
        let field = |f: &str| KeyPart::Field(f.to_owned());
        let method = |m: &str| KeyPart::Method(syn::parse_str(m).unwrap());
        assert_eq!(
            parse_key("unique", "product_id"),
            Ok(vec![field("product_id")])
        );
        assert_eq!(
            parse_key("unique", " shop ,sku, r#type "),
            Ok(vec![field("shop"), field("sku"), field("r#type")])
        );
        assert_eq!(
            parse_key("unique", "dedup_key()"),
            Ok(vec![method("dedup_key")])
        );
        assert_eq!(
            parse_key("rate_key", "shop, key ()"),
            Ok(vec![field("shop"), method("key")])
        );
        assert_eq!(parse_key("unique", "r#type()"), Ok(vec![method("r#type")]));

        let forms = "expected fields or `method()`s of the task separated by commas, e.g. \
                     `unique = \"account\"`, `unique = \"shop, sku\"` or \
                     `unique = \"dedup_key()\"`";
        assert_eq!(
            parse_key("unique", " ").unwrap_err(),
            format!("`unique` is empty; {forms}")
        );
        assert_eq!(
            parse_key("unique", "a,").unwrap_err(),
            format!("invalid `unique` \"a,\": an entry is empty; {forms}")
        );
        assert_eq!(
            parse_key("unique", "a.b()").unwrap_err(),
            format!("invalid `unique` \"a.b()\": `a.b` is not a method name; {forms}")
        );
        assert!(parse_key("unique", "type()").is_err());
        assert_eq!(
            parse_key("unique", "a, b, a").unwrap_err(),
            "invalid `unique` \"a, b, a\": `a` is named twice"
        );
        assert_eq!(
            parse_key("unique", "a, r#a").unwrap_err(),
            "invalid `unique` \"a, r#a\": `a` is named twice"
        );
        assert_eq!(
            parse_key("unique", "k(), k()").unwrap_err(),
            "invalid `unique` \"k(), k()\": `k()` is named twice"
        );
        // A field and a method of the same name are different entries.
        assert!(parse_key("unique", "k, k()").is_ok());
        assert_eq!(
            parse_key("concurrency_key", "unique_key()").unwrap_err(),
            "`concurrency_key` cannot call `unique_key()`: the derive implements \
             `Task::unique_key` itself; give your method another name, e.g. `dedup_key()`"
        );
    }

    #[test]
    fn flow_control_values() {
        let (attrs, errors) = parse(syn::parse_quote! {
            #[task(unique = "shop, sku", unique_for = "24h", rate = "100/s")]
            #[task(rate_key = "account", key_concurrency = 2, concurrency_key = "key()")]
            struct A;
        });
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(attrs.unique.unwrap().value.len(), 2);
        assert_eq!(attrs.unique_for.unwrap().value, secs(86400));
        assert_eq!(
            attrs.rate.unwrap().value,
            RateSpec {
                count: 100,
                per: secs(1)
            }
        );
        assert_eq!(attrs.rate_key.unwrap().value.len(), 1);
        assert_eq!(attrs.key_concurrency.unwrap().value, 2);
        assert_eq!(attrs.concurrency_key.unwrap().value.len(), 1);

        let (attrs, errors) = parse(syn::parse_quote! {
            #[task(unique = product_id, unique_for = 24, rate = 100, rate_key = "")]
            #[task(key_concurrency = "2", concurrency_key = "a b()", unique_for = "soon")]
            struct A;
        });
        assert_eq!(
            errors,
            vec![
                "expected a string literal for `unique`, e.g. `unique = \"product_id\"`, \
                 `unique = \"shop, sku\"` or `unique = \"dedup_key()\"`",
                "expected a string literal for `unique_for`, e.g. `unique_for = \"24h\"`",
                "expected a string literal for `rate`, e.g. `rate = \"100/s\"`",
                "`rate_key` is empty; expected fields or `method()`s of the task separated by \
                 commas, e.g. `rate_key = \"account\"`, `rate_key = \"shop, sku\"` or \
                 `rate_key = \"dedup_key()\"`",
                "expected an unsigned integer literal (u32) for `key_concurrency`, e.g. \
                 `key_concurrency = 5`",
                "invalid `concurrency_key` \"a b()\": `a b` is not a method name; expected \
                 fields or `method()`s of the task separated by commas, e.g. \
                 `concurrency_key = \"account\"`, `concurrency_key = \"shop, sku\"` or \
                 `concurrency_key = \"dedup_key()\"`",
                "duplicate task attribute `unique_for`",
            ]
        );
        assert!(attrs.unique.is_none() && attrs.rate.is_none() && attrs.key_concurrency.is_none());
        let (_, errors) = parse(syn::parse_quote! { #[task(unique_for = "soon")] struct A; });
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].starts_with("invalid duration `soon`: ")
                && errors[0]
                    .ends_with("; expected a duration such as \"10m\", \"24h\" or \"7days\""),
            "{errors:?}"
        );
        let (_, errors) = parse(syn::parse_quote! { #[task(key_concurrency = 2u8)] struct A; });
        assert_eq!(
            errors,
            vec!["`key_concurrency` is a u32; remove the `u8` suffix"]
        );
    }

    #[test]
    fn malformed_attributes() {
        let (_, errors) = parse(syn::parse_quote! {
            #[task]
            #[task = "x"]
            #[task(queue)]
            #[task(crate = "not a path")]
            struct A;
        });
        assert_eq!(errors.len(), 4, "{errors:?}");
        assert!(errors[0].contains("expected attribute arguments in parentheses"));
        assert!(errors[2].contains("expected `=`"), "{errors:?}");
        assert!(errors[3].contains("invalid `crate` path"), "{errors:?}");
    }
}
