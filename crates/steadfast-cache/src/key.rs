//! Keys: how a cache key is written into Redis keys and invalidation notices, and read back.

use std::hash::Hash;
use std::sync::Arc;

/// A key of a [`TieredCache`](crate::TieredCache).
///
/// The in-process tier keys entries by the value itself; the shared tier and the invalidation
/// notices need it as text, and a notice received from another instance must be read back into
/// a key to drop that entry. So a key writes itself as text and parses that text back.
///
/// Implemented for strings and integers. For a key of your own, write a form that
/// [`from_text`](CacheKey::from_text) reads back exactly:
///
/// ```
/// use steadfast_cache::CacheKey;
///
/// #[derive(Clone, PartialEq, Eq, Hash)]
/// struct Sku { shop: u32, item: u64 }
///
/// impl CacheKey for Sku {
///     fn write_text(&self, out: &mut String) {
///         use std::fmt::Write;
///         let _ = write!(out, "{}/{}", self.shop, self.item);
///     }
///     fn from_text(text: &str) -> Option<Self> {
///         let (shop, item) = text.split_once('/')?;
///         Some(Sku { shop: shop.parse().ok()?, item: item.parse().ok()? })
///     }
/// }
///
/// let mut text = String::new();
/// Sku { shop: 7, item: 42 }.write_text(&mut text);
/// assert_eq!(text, "7/42");
/// assert!(Sku::from_text("7/42") == Some(Sku { shop: 7, item: 42 }));
/// ```
///
/// A notice whose key does not parse makes the receiving instance mark its whole L1 for
/// revalidation, which is safe but costly: keep the two functions exact inverses.
pub trait CacheKey: Hash + Eq + Clone + Send + Sync + 'static {
    /// Appends the key's text form to `out`.
    fn write_text(&self, out: &mut String);

    /// Reads a key back from what [`write_text`](CacheKey::write_text) wrote.
    fn from_text(text: &str) -> Option<Self>;
}

impl CacheKey for String {
    fn write_text(&self, out: &mut String) {
        out.push_str(self);
    }

    fn from_text(text: &str) -> Option<Self> {
        Some(text.to_owned())
    }
}

impl CacheKey for Arc<str> {
    fn write_text(&self, out: &mut String) {
        out.push_str(self);
    }

    fn from_text(text: &str) -> Option<Self> {
        Some(Arc::from(text))
    }
}

impl CacheKey for Box<str> {
    fn write_text(&self, out: &mut String) {
        out.push_str(self);
    }

    fn from_text(text: &str) -> Option<Self> {
        Some(Box::from(text))
    }
}

macro_rules! integer_keys {
    ($($ty:ty),*) => {$(
        impl CacheKey for $ty {
            fn write_text(&self, out: &mut String) {
                use std::fmt::Write;
                let _ = write!(out, "{self}");
            }

            fn from_text(text: &str) -> Option<Self> {
                text.parse().ok()
            }
        }
    )*};
}

integer_keys!(u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize);
