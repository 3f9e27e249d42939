//! Codecs: how values become the payload of an L2 entry.

use std::fmt;

/// Turns values into bytes for the shared tier and back.
///
/// The payload sits inside the cache's versioned [envelope](crate::envelope), so a codec only
/// sees its own bytes. [`Json`] is the default; any serde format plugs in the same way:
///
/// ```
/// use steadfast_cache::codec::{Codec, CodecError, Json};
///
/// let mut bytes = Vec::new();
/// Json.encode(&vec![1u32, 2, 3], &mut bytes).unwrap();
/// let back: Vec<u32> = Json.decode(&bytes).unwrap();
/// assert_eq!(back, [1, 2, 3]);
/// let error: Result<Vec<u32>, CodecError> = Json.decode(b"not json");
/// assert!(error.is_err());
/// ```
pub trait Codec<V>: Send + Sync + 'static {
    /// Appends the encoded value to `out`.
    ///
    /// # Errors
    ///
    /// When the value cannot be encoded; the cache then keeps it in L1 only.
    fn encode(&self, value: &V, out: &mut Vec<u8>) -> Result<(), CodecError>;

    /// Decodes a value.
    ///
    /// # Errors
    ///
    /// When the bytes are not a value of this codec; the cache reads the entry as a miss.
    fn decode(&self, bytes: &[u8]) -> Result<V, CodecError>;
}

/// JSON through `serde_json`: readable with `redis-cli`, understood by services in any language.
#[derive(Clone, Copy, Debug, Default)]
pub struct Json;

impl<V> Codec<V> for Json
where
    V: serde::Serialize + serde::de::DeserializeOwned,
{
    fn encode(&self, value: &V, out: &mut Vec<u8>) -> Result<(), CodecError> {
        serde_json::to_writer(out, value).map_err(CodecError::new)
    }

    fn decode(&self, bytes: &[u8]) -> Result<V, CodecError> {
        serde_json::from_slice(bytes).map_err(CodecError::new)
    }
}

/// A value that could not be encoded, or bytes that are not a value.
#[derive(Debug)]
pub struct CodecError(Box<dyn std::error::Error + Send + Sync>);

impl CodecError {
    /// Wraps the codec's own error.
    pub fn new(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self(error.into())
    }
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cache codec: {}", self.0)
    }
}

impl std::error::Error for CodecError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}
