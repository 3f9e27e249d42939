//! `#[cached]`: the arguments, their checks, and the expansion into a `TieredCache` call.

use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{format_ident, quote};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, FnArg, GenericArgument, ItemFn, LitInt, LitStr, Pat, PathArguments, Token, Type};

use crate::{argument_names, crate_path};

/// The longest duration an argument takes, as the cache's builder allows.
const TEN_YEARS_MS: u64 = 10 * 365 * 24 * 3600 * 1000;

#[derive(Default)]
pub(crate) struct Args {
    key: Option<Expr>,
    cache: Option<Expr>,
    map_err: Option<Expr>,
    name: Option<LitStr>,
    capacity: Option<LitInt>,
    ttl: Option<(LitStr, u64)>,
    stale_if_error: Option<(LitStr, u64)>,
    stale_while_revalidate: Option<(LitStr, u64)>,
    negative_ttl: Option<(LitStr, u64)>,
}

const DURATIONS: [&str; 4] = [
    "ttl",
    "stale_if_error",
    "stale_while_revalidate",
    "negative_ttl",
];
const SETTINGS: [&str; 6] = [
    "ttl",
    "stale_if_error",
    "stale_while_revalidate",
    "negative_ttl",
    "capacity",
    "name",
];

enum Value {
    Expr(Expr),
    Str(LitStr),
    Int(LitInt),
}

struct Arg {
    name: syn::Ident,
    value: Value,
}

impl Parse for Arg {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let name: syn::Ident = input.parse()?;
        input.parse::<Token![=]>()?;
        let text = name.to_string();
        let value = if DURATIONS.contains(&text.as_str()) || text == "name" {
            Value::Str(input.parse()?)
        } else if text == "capacity" {
            Value::Int(input.parse()?)
        } else {
            Value::Expr(input.parse()?)
        };
        Ok(Arg { name, value })
    }
}

fn duration(literal: LitStr, what: &str) -> syn::Result<(LitStr, u64)> {
    let parsed = humantime::parse_duration(&literal.value()).map_err(|error| {
        syn::Error::new(
            literal.span(),
            format!("`{what}` is not a duration: {error}"),
        )
    })?;
    let millis = u64::try_from(parsed.as_millis()).unwrap_or(u64::MAX);
    if millis == 0 {
        return Err(syn::Error::new(
            literal.span(),
            format!("`{what}` must be longer than zero"),
        ));
    }
    if millis > TEN_YEARS_MS {
        return Err(syn::Error::new(
            literal.span(),
            format!("`{what}` is limited to ten years"),
        ));
    }
    Ok((literal, millis))
}

fn set<T>(slot: &mut Option<T>, value: T, name: &syn::Ident) -> syn::Result<()> {
    if slot.replace(value).is_some() {
        return Err(syn::Error::new(
            name.span(),
            format!("`{name}` is given twice"),
        ));
    }
    Ok(())
}

impl Parse for Args {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut args = Args::default();
        let mut cache_span = None;
        let mut setting_span = None;
        for arg in Punctuated::<Arg, Token![,]>::parse_terminated(input)? {
            let name = arg.name;
            let text = name.to_string();
            if SETTINGS.contains(&text.as_str()) {
                setting_span.get_or_insert(name.span());
            }
            match (text.as_str(), arg.value) {
                ("key", Value::Expr(expr)) => set(&mut args.key, expr, &name)?,
                ("cache", Value::Expr(expr)) => {
                    cache_span = Some(name.span());
                    set(&mut args.cache, expr, &name)?;
                }
                ("map_err", Value::Expr(expr)) => set(&mut args.map_err, expr, &name)?,
                ("name", Value::Str(literal)) => {
                    let value = literal.value();
                    if value.is_empty()
                        || value.len() > 200
                        || value.chars().any(|c| {
                            matches!(c, '{' | '}' | ':') || c.is_whitespace() || c.is_control()
                        })
                    {
                        return Err(syn::Error::new(
                            literal.span(),
                            "`name` must be 1 to 200 characters without braces, colons or spaces",
                        ));
                    }
                    set(&mut args.name, literal, &name)?;
                }
                ("capacity", Value::Int(literal)) => {
                    if literal.base10_parse::<u64>()? == 0 {
                        return Err(syn::Error::new(
                            literal.span(),
                            "`capacity` must be above zero",
                        ));
                    }
                    set(&mut args.capacity, literal, &name)?;
                }
                ("ttl", Value::Str(literal)) => {
                    set(&mut args.ttl, duration(literal, "ttl")?, &name)?
                }
                ("stale_if_error", Value::Str(literal)) => set(
                    &mut args.stale_if_error,
                    duration(literal, "stale_if_error")?,
                    &name,
                )?,
                ("stale_while_revalidate", Value::Str(literal)) => set(
                    &mut args.stale_while_revalidate,
                    duration(literal, "stale_while_revalidate")?,
                    &name,
                )?,
                ("negative_ttl", Value::Str(literal)) => set(
                    &mut args.negative_ttl,
                    duration(literal, "negative_ttl")?,
                    &name,
                )?,
                (other, _) => {
                    return Err(syn::Error::new(
                        name.span(),
                        format!(
                            "unknown argument `{other}`: expected key, ttl, stale_if_error, \
                             stale_while_revalidate, negative_ttl, capacity, name, cache or map_err"
                        ),
                    ));
                }
            }
        }
        if let (Some(_), Some(span)) = (cache_span, setting_span) {
            return Err(syn::Error::new(
                span,
                "a `cache` of your own has its own settings: give them to its builder, not here",
            ));
        }
        if cache_span.is_none() && args.ttl.is_none() {
            return Err(syn::Error::new(
                Span::call_site(),
                "#[cached] needs `ttl = \"...\"` (or a `cache = ...` of your own)",
            ));
        }
        Ok(args)
    }
}

/// `T` of a `Result<T, E>` return type, and whether it is an `Option`.
fn value_type(output: &Type) -> Option<(&Type, bool)> {
    let Type::Path(path) = output else {
        return None;
    };
    let last = path.path.segments.last()?;
    if last.ident != "Result" {
        return None;
    }
    let PathArguments::AngleBracketed(arguments) = &last.arguments else {
        return None;
    };
    let GenericArgument::Type(value) = arguments.args.first()? else {
        return None;
    };
    let optional = matches!(value, Type::Path(p) if p.path.segments.last().is_some_and(|s| s.ident == "Option"));
    Some((value, optional))
}

fn millis(setting: Option<&(LitStr, u64)>, method: &str) -> TokenStream2 {
    match setting {
        Some((_, millis)) => {
            let method = format_ident!("{method}");
            quote!(.#method(::core::time::Duration::from_millis(#millis)))
        }
        None => quote!(),
    }
}

pub(crate) fn expand(args: Args, function: ItemFn) -> syn::Result<TokenStream2> {
    let krate = crate_path("steadfast-cache", "cache");
    let signature = &function.sig;
    if signature.asyncness.is_none() {
        return Err(syn::Error::new(
            signature.fn_token.span(),
            "#[cached] works on `async fn`s",
        ));
    }
    if !signature.generics.params.is_empty() {
        return Err(syn::Error::new(
            signature.generics.span(),
            "#[cached] works on functions without generic parameters: its cache is one static",
        ));
    }
    let names = argument_names(signature, "cached", |typed| match &*typed.ty {
        Type::Reference(reference) => Err(syn::Error::new(
            reference.span(),
            "#[cached] runs the body on its own task: take owned arguments (`String`, not `&str`)",
        )),
        _ => Ok(()),
    })?;
    let syn::ReturnType::Type(_, output) = &signature.output else {
        return Err(syn::Error::new(
            signature.span(),
            "#[cached] needs a function returning `Result<T, E>`",
        ));
    };
    let Some((value, optional)) = value_type(output) else {
        return Err(syn::Error::new(
            output.span(),
            "#[cached] needs a function returning `Result<T, E>`",
        ));
    };
    let key = match (args.key, names.as_slice()) {
        (Some(key), _) => quote!(#key),
        (None, [only]) => quote!(#only),
        (None, _) => {
            return Err(syn::Error::new(
                Span::call_site(),
                "#[cached] needs `key = ...` for a function of more or fewer than one argument",
            ));
        }
    };
    if args.negative_ttl.is_some() && !optional {
        return Err(syn::Error::new(
            args.negative_ttl
                .as_ref()
                .map_or_else(Span::call_site, |(literal, _)| literal.span()),
            "`negative_ttl` keeps `Ok(None)`: it needs a function returning `Result<Option<T>, E>`",
        ));
    }
    let map_err = args
        .map_err
        .map_or_else(|| quote!(::core::convert::From::from), |map| quote!(#map));
    let inner = format_ident!("__steadfast_cached_{}", signature.ident);
    let mut inner_signature = signature.clone();
    inner_signature.ident = inner.clone();
    let (cache, key) = match args.cache {
        Some(cache) => (quote!((#cache)), key),
        None => {
            let name = args
                .name
                .map_or_else(|| signature.ident.to_string(), |name| name.value());
            let capacity = args
                .capacity
                .map_or_else(|| quote!(), |capacity| quote!(.max_capacity(#capacity)));
            let admit = if optional {
                quote!(.admit(#krate::Admit::option))
            } else {
                quote!()
            };
            let ttl = millis(args.ttl.as_ref(), "ttl");
            let stale_if_error = millis(args.stale_if_error.as_ref(), "stale_if_error");
            let revalidate = millis(
                args.stale_while_revalidate.as_ref(),
                "stale_while_revalidate",
            );
            let negative = millis(args.negative_ttl.as_ref(), "negative_ttl");
            let cache = quote! {{
                static __STEADFAST_CACHE: ::std::sync::LazyLock<
                    #krate::TieredCache<::std::string::String, #value>,
                > = ::std::sync::LazyLock::new(|| {
                    #krate::TieredCache::builder(#name)
                        #ttl #stale_if_error #revalidate #negative #capacity #admit
                        .build()
                        // Every setting was checked when the attribute was compiled.
                        .expect("#[cached] settings are checked at compile time")
                });
                &*__STEADFAST_CACHE
            }};
            (cache, quote!(::std::string::ToString::to_string(&(#key))))
        }
    };
    let attrs = &function.attrs;
    let vis = &function.vis;
    let block = &function.block;
    // The outer function only moves its arguments on: a `mut` belongs to the body's copy.
    let mut outer = signature.clone();
    for input in &mut outer.inputs {
        if let FnArg::Typed(typed) = input {
            if let Pat::Ident(ident) = &mut *typed.pat {
                ident.mutability = None;
            }
        }
    }
    Ok(quote! {
        #(#attrs)*
        #vis #outer {
            #[allow(clippy::too_many_arguments)]
            #inner_signature #block

            let __steadfast_key = #key;
            let __steadfast_result: #output = match #cache
                .get_with(__steadfast_key, move || #inner(#(#names),*))
                .await
            {
                ::core::result::Result::Ok(cached) => ::core::result::Result::Ok(cached.into_inner()),
                ::core::result::Result::Err(error) => ::core::result::Result::Err((#map_err)(error)),
            };
            __steadfast_result
        }
    })
}
