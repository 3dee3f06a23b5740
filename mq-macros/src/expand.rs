//! Code generation from a valid [`TaskModel`].

use std::time::Duration;

use proc_macro2::{Literal, Span, TokenStream};
use quote::quote_spanned;

use crate::attr::BackoffSpec;
use crate::check::TaskModel;

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
        }
    }
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
