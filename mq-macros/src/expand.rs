//! Code generation from a valid [`TaskModel`].

use std::time::Duration;

use proc_macro2::{Literal, Span, TokenStream};
use quote::quote_spanned;

use crate::attr::BackoffSpec;
use crate::attr::Spanned;
use crate::check::{KeySource, TaskModel};

/// Emits `impl <krate>::Task for <Type>`.
///
/// The impl is spanned at the type name, so when the type lacks a supertrait of `Task`
/// (`Serialize`, `DeserializeOwned`, `Send`, `'static`) rustc points at the type.
pub(crate) fn expand(model: &TaskModel) -> TokenStream {
    let TaskModel {
        ident,
        krate,
        name,
        queue,
        ..
    } = model;
    let span = ident.span();

    let mut fields = Vec::new();
    if let Some(n) = &model.max_retries {
        let lit = spanned_lit(Literal::u32_unsuffixed(n.value), n.span);
        fields.push(quote_spanned!(n.span=> max_retries: #lit,));
    }
    if let Some(t) = &model.timeout {
        let value = match t.value {
            Some(d) => {
                let d = duration(d, t.span);
                quote_spanned!(t.span=> ::core::option::Option::Some(#d))
            }
            None => quote_spanned!(t.span=> ::core::option::Option::None),
        };
        fields.push(quote_spanned!(t.span=> timeout: #value,));
    }
    if let Some(b) = &model.backoff {
        let value = match b.value {
            BackoffSpec::None => quote_spanned!(b.span=> #krate::Backoff::None),
            BackoffSpec::Fixed(d) => {
                let d = duration(d, b.span);
                quote_spanned!(b.span=> #krate::Backoff::Fixed(#d))
            }
            BackoffSpec::Exponential { base, cap } => {
                let (base, cap) = (duration(base, b.span), duration(cap, b.span));
                quote_spanned!(b.span=> #krate::Backoff::Exponential { base: #base, cap: #cap })
            }
        };
        fields.push(quote_spanned!(b.span=> backoff: #value,));
    }
    if let Some(c) = &model.concurrency {
        let lit = spanned_lit(Literal::usize_unsuffixed(c.value), c.span);
        fields.push(quote_spanned!(c.span=> concurrency: ::core::option::Option::Some(#lit),));
    }
    if let Some(p) = &model.partitions {
        let lit = spanned_lit(Literal::u16_unsuffixed(p.value), p.span);
        fields.push(quote_spanned!(p.span=> partitions: #lit,));
    }

    if let Some(u) = &model.unique_for {
        let d = duration(u.value, u.span);
        fields.push(quote_spanned!(u.span=> unique_for: ::core::option::Option::Some(#d),));
    }
    if let Some(t) = &model.result_ttl {
        let d = duration(t.value, t.span);
        fields.push(quote_spanned!(t.span=> result_ttl: ::core::option::Option::Some(#d),));
    }
    if let Some(span) = model.events {
        fields.push(quote_spanned!(span=> events: true,));
    }
    if let Some(r) = &model.rate {
        let count = spanned_lit(Literal::u32_suffixed(r.value.count), r.span);
        let per = duration(r.value.per, r.span);
        fields.push(quote_spanned!(r.span=>
            rate: ::core::option::Option::Some(#krate::Rate::new(#count, #per)),
        ));
    }
    if let Some(k) = &model.key_concurrency {
        let lit = spanned_lit(Literal::u32_unsuffixed(k.value), k.span);
        fields.push(quote_spanned!(k.span=> key_concurrency: ::core::option::Option::Some(#lit),));
    }

    if let Some(p) = &model.priority {
        let level = match p.value.as_str() {
            "high" => quote_spanned!(p.span=> High),
            "low" => quote_spanned!(p.span=> Low),
            _ => quote_spanned!(p.span=> Normal),
        };
        fields.push(quote_spanned!(p.span=>
            priority: ::core::option::Option::Some(#krate::Priority::#level),
        ));
    }

    // Spanned at the `partition_by` string, so a field type without `Display` gets rustc's
    // trait-bound error there.
    let partition_key = model.partition_by.as_ref().map(|by| {
        let field = &by.value;
        quote_spanned! {by.span=>
            fn partition_key(&self) -> ::core::option::Option<::std::string::String> {
                ::core::option::Option::Some(::std::string::ToString::to_string(&self.#field))
            }
        }
    });

    let unique_key = key_method("unique_key", model.unique.as_ref());
    let rate_key = key_method("rate_key", model.rate_key.as_ref());
    let concurrency_key = key_method("concurrency_key", model.concurrency_key.as_ref());

    quote_spanned! {span=>
        #[automatically_derived]
        impl #krate::Task for #ident {
            const NAME: &'static str = #name;
            const QUEUE: &'static str = #queue;
            const OPTIONS: #krate::TaskOptions = #krate::TaskOptions {
                #(#fields)*
                ..#krate::TaskOptions::DEFAULT
            };
            #partition_key
            #unique_key
            #rate_key
            #concurrency_key
        }
    }
}

/// `fn <method>(&self) -> Option<String>` returning the entries' `to_string()`s joined by `:`
/// (one entry: just its `to_string()`). Spanned at the attribute's string, so an entry whose
/// type is not `Display`, or a method that does not exist, gets rustc's error there.
fn key_method(method: &str, key: Option<&Spanned<Vec<KeySource>>>) -> Option<TokenStream> {
    let key = key?;
    let span = key.span;
    let method = proc_macro2::Ident::new(method, span);
    let parts: Vec<TokenStream> = key
        .value
        .iter()
        .map(|part| {
            let value = match part {
                KeySource::Field(f) => quote_spanned!(span=> self.#f),
                KeySource::Method(m) => quote_spanned!(span=> self.#m()),
            };
            quote_spanned!(span=> ::std::string::ToString::to_string(&#value))
        })
        .collect();
    let body = match parts.as_slice() {
        [one] => one.clone(),
        _ => quote_spanned!(span=> [#(#parts),*].join(":")),
    };
    Some(quote_spanned! {span=>
        fn #method(&self) -> ::core::option::Option<::std::string::String> {
            ::core::option::Option::Some(#body)
        }
    })
}

fn spanned_lit(mut lit: Literal, span: Span) -> Literal {
    lit.set_span(span);
    lit
}

/// `::core::time::Duration::new(secs, nanos)`: a `const fn`, exact for any parsed duration.
fn duration(d: Duration, span: Span) -> TokenStream {
    let secs = spanned_lit(Literal::u64_suffixed(d.as_secs()), span);
    let nanos = spanned_lit(Literal::u32_suffixed(d.subsec_nanos()), span);
    quote_spanned!(span=> ::core::time::Duration::new(#secs, #nanos))
}

/// The whole expansion as one string, for tests.
#[cfg(test)]
fn expand_str(input: syn::DeriveInput) -> String {
    let mut cx = crate::Ctxt::new();
    let attrs = crate::attr::TaskAttrs::from_attrs(&mut cx, &input.attrs);
    let model = crate::check::check(&mut cx, &input, attrs);
    cx.finish().expect("valid input");
    expand(&model).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    #[test]
    fn defaults_only() {
        let out = expand_str(syn::parse_quote! { struct EmbedImage { id: u64 } });
        assert_eq!(
            out,
            quote! {
                #[automatically_derived]
                impl ::mq_core::Task for EmbedImage {
                    const NAME: &'static str = "EmbedImage";
                    const QUEUE: &'static str = "embed_image";
                    const OPTIONS: ::mq_core::TaskOptions = ::mq_core::TaskOptions {
                        ..::mq_core::TaskOptions::DEFAULT
                    };
                }
            }
            .to_string()
        );
    }

    #[test]
    fn every_option() {
        let out = expand_str(syn::parse_quote! {
            #[task(queue = "images", name = "Embed", max_retries = 5, timeout = "1.5s")]
            #[task(backoff = "exponential(500ms, 10m)", concurrency = 8, crate = "renamed")]
            enum Job { A, B }
        });
        assert_eq!(
            out,
            quote! {
                #[automatically_derived]
                impl renamed::Task for Job {
                    const NAME: &'static str = "Embed";
                    const QUEUE: &'static str = "images";
                    const OPTIONS: renamed::TaskOptions = renamed::TaskOptions {
                        max_retries: 5,
                        timeout: ::core::option::Option::Some(
                            ::core::time::Duration::new(1u64, 500000000u32)
                        ),
                        backoff: renamed::Backoff::Exponential {
                            base: ::core::time::Duration::new(0u64, 500000000u32),
                            cap: ::core::time::Duration::new(600u64, 0u32)
                        },
                        concurrency: ::core::option::Option::Some(8),
                        ..renamed::TaskOptions::DEFAULT
                    };
                }
            }
            .to_string()
        );
    }

    #[test]
    fn partitions_and_partition_by() {
        let out = expand_str(syn::parse_quote! {
            #[task(partitions = 16, partition_by = "account")]
            struct Transfer { account: String, amount: u64 }
        });
        assert_eq!(
            out,
            quote! {
                #[automatically_derived]
                impl ::mq_core::Task for Transfer {
                    const NAME: &'static str = "Transfer";
                    const QUEUE: &'static str = "transfer";
                    const OPTIONS: ::mq_core::TaskOptions = ::mq_core::TaskOptions {
                        partitions: 16,
                        ..::mq_core::TaskOptions::DEFAULT
                    };
                    fn partition_key(&self) -> ::core::option::Option<::std::string::String> {
                        ::core::option::Option::Some(
                            ::std::string::ToString::to_string(&self.account)
                        )
                    }
                }
            }
            .to_string()
        );
    }

    #[test]
    fn partitions_without_partition_by_keeps_round_robin() {
        let out = expand_str(syn::parse_quote! {
            #[task(partitions = 1024)]
            enum Job { A }
        });
        assert!(out.contains("partitions : 1024 ,"), "{out}");
        assert!(!out.contains("partition_key"), "{out}");
        // A raw field name is matched with or without `r#` and emitted as written.
        let out = expand_str(syn::parse_quote! {
            #[task(partitions = 2, partition_by = "type")]
            struct A { r#type: u8 }
        });
        assert!(out.contains("to_string (& self . r#type)"), "{out}");
    }

    #[test]
    fn flow_control() {
        let out = expand_str(syn::parse_quote! {
            #[task(unique = "shop, sku", unique_for = "24h", rate = "5/1500ms")]
            #[task(rate_key = "account", key_concurrency = 2, concurrency_key = "slot()")]
            struct Embed { shop: u32, sku: String, account: String }
        });
        assert_eq!(
            out,
            quote! {
                #[automatically_derived]
                impl ::mq_core::Task for Embed {
                    const NAME: &'static str = "Embed";
                    const QUEUE: &'static str = "embed";
                    const OPTIONS: ::mq_core::TaskOptions = ::mq_core::TaskOptions {
                        unique_for: ::core::option::Option::Some(
                            ::core::time::Duration::new(86400u64, 0u32)
                        ),
                        rate: ::core::option::Option::Some(::mq_core::Rate::new(
                            5u32,
                            ::core::time::Duration::new(1u64, 500000000u32)
                        )),
                        key_concurrency: ::core::option::Option::Some(2),
                        ..::mq_core::TaskOptions::DEFAULT
                    };
                    fn unique_key(&self) -> ::core::option::Option<::std::string::String> {
                        ::core::option::Option::Some([
                            ::std::string::ToString::to_string(&self.shop),
                            ::std::string::ToString::to_string(&self.sku)
                        ].join(":"))
                    }
                    fn rate_key(&self) -> ::core::option::Option<::std::string::String> {
                        ::core::option::Option::Some(
                            ::std::string::ToString::to_string(&self.account)
                        )
                    }
                    fn concurrency_key(&self) -> ::core::option::Option<::std::string::String> {
                        ::core::option::Option::Some(
                            ::std::string::ToString::to_string(&self.slot())
                        )
                    }
                }
            }
            .to_string()
        );
    }

    #[test]
    fn rate_per_queue_and_unique_method() {
        let out = expand_str(syn::parse_quote! {
            #[task(rate = "100/s", unique = "key()", crate = "renamed")]
            enum Job { A }
        });
        assert!(
            out.contains(
                "rate : :: core :: option :: Option :: Some (renamed :: Rate :: new (100u32 , \
                 :: core :: time :: Duration :: new (1u64 , 0u32))) ,"
            ),
            "{out}"
        );
        assert!(out.contains("to_string (& self . key ())"), "{out}");
        assert!(
            !out.contains("rate_key") && !out.contains("unique_for"),
            "{out}"
        );
    }

    #[test]
    fn timeout_none_and_other_backoffs() {
        let out = expand_str(syn::parse_quote! {
            #[task(timeout = "none", backoff = "none")]
            struct A;
        });
        assert!(
            out.contains("timeout : :: core :: option :: Option :: None ,"),
            "{out}"
        );
        assert!(
            out.contains("backoff : :: mq_core :: Backoff :: None ,"),
            "{out}"
        );
        let out = expand_str(syn::parse_quote! {
            #[task(backoff = "fixed(2m)")]
            struct A;
        });
        assert!(
            out.contains(
                "backoff : :: mq_core :: Backoff :: Fixed (:: core :: time :: Duration :: new (120u64 , 0u32)) ,"
            ),
            "{out}"
        );
    }
}
