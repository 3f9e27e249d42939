//! Attributes that declare a policy on the function it governs.
//!
//! `#[idempotent]` makes an async business function run once per idempotency key: a repeat
//! gets the stored result, through serde, without running the body again. It expands to a
//! call of `Idempotency::run` from `steadfast-idempotency`.
//!
//! [`#[cached]`](macro@cached) caches the results of an async function in a `TieredCache`
//! from `steadfast-cache`, with its TTL and stale windows written on the function.
//!
//! ```
//! use steadfast_idempotency::{Fingerprint, Idempotency, IdempotencyKey, Refusal};
//! use steadfast_macros::idempotent;
//! use std::sync::LazyLock;
//! use std::sync::atomic::{AtomicU32, Ordering};
//!
//! static PAYMENTS: LazyLock<Idempotency> = LazyLock::new(Idempotency::in_memory);
//! static CHARGES: AtomicU32 = AtomicU32::new(0);
//!
//! #[derive(Debug)]
//! enum PayError { Declined, Refused(Refusal) }
//! impl From<Refusal> for PayError {
//!     fn from(refusal: Refusal) -> Self { PayError::Refused(refusal) }
//! }
//!
//! #[idempotent(
//!     engine = PAYMENTS,
//!     scope = customer,
//!     key = key,
//!     fingerprint = Fingerprint::of(&cents.to_be_bytes()),
//!     ttl = "24h",
//! )]
//! async fn charge(customer: &str, key: &IdempotencyKey, cents: u64) -> Result<String, PayError> {
//!     if cents == 0 {
//!         return Err(PayError::Declined);
//!     }
//!     let n = CHARGES.fetch_add(1, Ordering::SeqCst) + 1;
//!     Ok(format!("receipt #{n}: {cents} cents"))
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let key = IdempotencyKey::try_from("order-9").unwrap();
//! assert_eq!(charge("alice", &key, 500).await.unwrap(), "receipt #1: 500 cents");
//! assert_eq!(charge("alice", &key, 500).await.unwrap(), "receipt #1: 500 cents");
//! assert!(matches!(charge("alice", &key, 700).await, Err(PayError::Refused(Refusal::Mismatch))));
//! assert_eq!(CHARGES.load(Ordering::SeqCst), 1);
//! # }
//! ```
//!
//! | argument | meaning | default |
//! |---|---|---|
//! | `engine = EXPR` | the `Idempotency` to use (a static, or any expression) | required |
//! | `key = EXPR` | the key: a `&IdempotencyKey` or an `IdempotencyKey` | required |
//! | `scope = EXPR` | the caller's identity, a `&str` | `""`: one scope |
//! | `fingerprint = EXPR` | a `Fingerprint` of what makes the call the same call | the function's name: the key alone decides |
//! | `ttl = "DURATION"` | how long the result is kept (`"90s"`, `"24h"`) | the engine's retention |
//!
//! The function must be `async`, return `Result<T, E>` with `T: Serialize + DeserializeOwned`
//! and `E: From<Refusal>`, and take its arguments by plain names; its arguments are in scope
//! in the attribute's expressions. An `Err` releases the key, so a retry runs again.
#![forbid(unsafe_code)]

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{format_ident, quote, quote_spanned};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, FnArg, ItemFn, LitStr, Pat, Token};

mod cached;

struct Args {
    engine: Option<Expr>,
    key: Option<Expr>,
    scope: Option<Expr>,
    fingerprint: Option<Expr>,
    ttl: Option<(LitStr, u64)>,
}

struct Arg {
    name: syn::Ident,
    value: ArgValue,
}

enum ArgValue {
    Expr(Expr),
    Str(LitStr),
}

impl Parse for Arg {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let name: syn::Ident = input.parse()?;
        input.parse::<Token![=]>()?;
        let value = if name == "ttl" {
            ArgValue::Str(input.parse()?)
        } else {
            ArgValue::Expr(input.parse()?)
        };
        Ok(Arg { name, value })
    }
}

impl Parse for Args {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut args = Args {
            engine: None,
            key: None,
            scope: None,
            fingerprint: None,
            ttl: None,
        };
        for arg in Punctuated::<Arg, Token![,]>::parse_terminated(input)? {
            let span = arg.name.span();
            let duplicate = || syn::Error::new(span, format!("`{}` is given twice", arg.name));
            match (arg.name.to_string().as_str(), arg.value) {
                ("engine", ArgValue::Expr(expr)) => {
                    if args.engine.replace(expr).is_some() {
                        return Err(duplicate());
                    }
                }
                ("key", ArgValue::Expr(expr)) => {
                    if args.key.replace(expr).is_some() {
                        return Err(duplicate());
                    }
                }
                ("scope", ArgValue::Expr(expr)) => {
                    if args.scope.replace(expr).is_some() {
                        return Err(duplicate());
                    }
                }
                ("fingerprint", ArgValue::Expr(expr)) => {
                    if args.fingerprint.replace(expr).is_some() {
                        return Err(duplicate());
                    }
                }
                ("ttl", ArgValue::Str(literal)) => {
                    let parsed = humantime::parse_duration(&literal.value()).map_err(|error| {
                        syn::Error::new(literal.span(), format!("`ttl` is not a duration: {error}"))
                    })?;
                    let millis = u64::try_from(parsed.as_millis()).unwrap_or(u64::MAX);
                    if millis == 0 {
                        return Err(syn::Error::new(
                            literal.span(),
                            "`ttl` must be longer than zero",
                        ));
                    }
                    if args.ttl.replace((literal, millis)).is_some() {
                        return Err(duplicate());
                    }
                }
                (other, _) => {
                    return Err(syn::Error::new(
                        span,
                        format!("unknown argument `{other}`: expected engine, key, scope, fingerprint or ttl"),
                    ));
                }
            }
        }
        Ok(args)
    }
}

/// Runs an async function once per idempotency key. See the [crate docs](crate).
#[proc_macro_attribute]
pub fn idempotent(attr: TokenStream, item: TokenStream) -> TokenStream {
    let args = syn::parse_macro_input!(attr as Args);
    let function = syn::parse_macro_input!(item as ItemFn);
    match expand(args, function) {
        Ok(tokens) => tokens.into(),
        Err(error) => error.to_compile_error().into(),
    }
}

/// The path of a family crate as the calling crate names it: the crate directly, or its
/// module of the `steadfast` facade.
pub(crate) fn crate_path(package: &str, module: &str) -> TokenStream2 {
    use proc_macro_crate::{crate_name, FoundCrate};
    let module = format_ident!("{module}");
    match crate_name(package) {
        Ok(FoundCrate::Itself) => quote!(crate),
        Ok(FoundCrate::Name(name)) => {
            let name = format_ident!("{name}");
            quote!(::#name)
        }
        Err(_) => match crate_name("steadfast") {
            Ok(FoundCrate::Name(name)) => {
                let name = format_ident!("{name}");
                quote!(::#name::#module)
            }
            _ => quote!(::steadfast::#module),
        },
    }
}

/// The names of a free function's arguments, which an expansion passes on to the body: each
/// must be a plain name, and each typed argument passes `check` first. Errors name the
/// attribute.
pub(crate) fn argument_names(
    signature: &syn::Signature,
    attribute: &str,
    check: impl Fn(&syn::PatType) -> syn::Result<()>,
) -> syn::Result<Vec<syn::Ident>> {
    let mut names = Vec::new();
    for input in &signature.inputs {
        match input {
            FnArg::Receiver(receiver) => {
                return Err(syn::Error::new(
                    receiver.span(),
                    format!("#[{attribute}] works on free functions, not methods: call a free function from the method"),
                ));
            }
            FnArg::Typed(typed) => {
                check(typed)?;
                match &*typed.pat {
                    Pat::Ident(ident) if ident.by_ref.is_none() && ident.subpat.is_none() => {
                        names.push(ident.ident.clone());
                    }
                    other => {
                        return Err(syn::Error::new(
                            other.span(),
                            format!("#[{attribute}] needs arguments with plain names"),
                        ));
                    }
                }
            }
        }
    }
    Ok(names)
}

/// Caches the results of an async function in a `TieredCache` (from `steadfast-cache`): one
/// line declares what is cached, for how long, and when a stale answer beats an error.
///
/// ```
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use steadfast_macros::cached;
///
/// static QUERIES: AtomicU32 = AtomicU32::new(0);
///
/// #[derive(Debug, Clone)]
/// struct DbError(String);
/// impl From<steadfast_cache::Error<DbError>> for DbError {
///     fn from(error: steadfast_cache::Error<DbError>) -> Self {
///         match error {
///             steadfast_cache::Error::Load(error) => (*error).clone(),
///             other => DbError(format!("{other:?}")),
///         }
///     }
/// }
///
/// #[cached(ttl = "5m", stale_if_error = "1h", key = id)]
/// async fn product_name(id: u64) -> Result<String, DbError> {
///     QUERIES.fetch_add(1, Ordering::SeqCst);
///     Ok(format!("product {id}"))
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// assert_eq!(product_name(7).await.unwrap(), "product 7");
/// assert_eq!(product_name(7).await.unwrap(), "product 7");
/// assert_eq!(QUERIES.load(Ordering::SeqCst), 1);
/// # }
/// ```
///
/// | argument | meaning | default |
/// |---|---|---|
/// | `key = EXPR` | the key; its `Display` text keys the function's own cache | the argument, for a function of one |
/// | `ttl = "DURATION"` | how long a result is fresh (`"90s"`, `"5m"`) | required, unless `cache` is given |
/// | `stale_if_error = "DURATION"` | how long past its TTL a result answers a failed reload | none |
/// | `stale_while_revalidate = "DURATION"` | how long past its TTL a result is answered while it reloads in the background | none |
/// | `negative_ttl = "DURATION"` | how long an `Ok(None)` is kept, for `Result<Option<T>, E>` | none: `None` is not kept |
/// | `capacity = N` | the most entries kept in process | 10 000 |
/// | `name = "NAME"` | the cache's name (metrics, Redis keys) | the function's name |
/// | `cache = EXPR` | a `TieredCache<K, T>` of your own (with a Redis tier, say) instead; `key` is then its `K` | the function's own |
/// | `map_err = EXPR` | turns a `steadfast_cache::Error<E>` into the function's `E` | `From::from` |
///
/// The function must be `async`, not generic, return `Result<T, E>` with `T: Clone + Send +
/// Sync + 'static`, and take owned arguments: a load runs on its own task, so that a caller
/// that goes away does not cancel it for the others. Errors are never cached; concurrent calls
/// with one key run the body once.
#[proc_macro_attribute]
pub fn cached(attr: TokenStream, item: TokenStream) -> TokenStream {
    let args = syn::parse_macro_input!(attr as cached::Args);
    let function = syn::parse_macro_input!(item as ItemFn);
    match cached::expand(args, function) {
        Ok(tokens) => tokens.into(),
        Err(error) => error.to_compile_error().into(),
    }
}

fn expand(args: Args, function: ItemFn) -> syn::Result<TokenStream2> {
    let krate = crate_path("steadfast-idempotency", "idempotency");
    let signature = &function.sig;
    if signature.asyncness.is_none() {
        return Err(syn::Error::new(
            signature.fn_token.span(),
            "#[idempotent] works on `async fn`s",
        ));
    }
    let Some(engine) = args.engine else {
        return Err(syn::Error::new(
            Span::call_site(),
            "#[idempotent] needs `engine = ...`",
        ));
    };
    let Some(key) = args.key else {
        return Err(syn::Error::new(
            Span::call_site(),
            "#[idempotent] needs `key = ...`",
        ));
    };
    let names = argument_names(signature, "idempotent", |_| Ok(()))?;
    let syn::ReturnType::Type(_, output) = &signature.output else {
        return Err(syn::Error::new(
            signature.span(),
            "#[idempotent] needs a function returning `Result<T, E>`",
        ));
    };
    let attrs = &function.attrs;
    let vis = &function.vis;
    let block = &function.block;
    let inner = format_ident!("__steadfast_idempotent_{}", signature.ident);
    let mut inner_signature = signature.clone();
    inner_signature.ident = inner.clone();
    let name = signature.ident.to_string();
    let scope = args
        .scope
        .map_or_else(|| quote!(""), |scope| quote!(#scope));
    let fingerprint = args.fingerprint.map_or_else(
        || quote!(#krate::Fingerprint::of(#name.as_bytes())),
        |fingerprint| quote!(#fingerprint),
    );
    let engine = match args.ttl {
        Some((literal, millis)) => quote_spanned! {literal.span()=>
            &(#engine).with_retention(::core::time::Duration::from_millis(#millis))
        },
        None => quote!(&#engine),
    };
    Ok(quote! {
        #(#attrs)*
        #vis #signature {
            #[allow(clippy::too_many_arguments)]
            #inner_signature #block

            let __steadfast_key = ::core::borrow::Borrow::<#krate::IdempotencyKey>::borrow(&#key).clone();
            let __steadfast_scope: &str = #scope;
            let __steadfast_scope = ::std::string::String::from(__steadfast_scope);
            let __steadfast_print: #krate::Fingerprint = #fingerprint;
            let __steadfast_engine = #engine;
            let __steadfast_result: #output = match __steadfast_engine
                .run(&__steadfast_scope, &__steadfast_key, __steadfast_print, move || #inner(#(#names),*))
                .await
            {
                ::core::result::Result::Ok(value) => ::core::result::Result::Ok(value),
                ::core::result::Result::Err(error) => match error.into_failed() {
                    ::core::result::Result::Ok(error) => ::core::result::Result::Err(error),
                    ::core::result::Result::Err(refusal) => ::core::result::Result::Err(::core::convert::From::from(refusal)),
                },
            };
            __steadfast_result
        }
    })
}
