//! What makes two requests the same request: a SHA-256 over the parts the route chooses.

use std::fmt;

use sha2::{Digest, Sha256};

/// A request's fingerprint. The same key with another fingerprint is `422`.
///
/// ```
/// use steadfast_idempotency::Fingerprint;
///
/// let a = Fingerprint::builder().part(b"POST").part(b"/payments").part(b"{\"eur\":10}").finish();
/// let b = Fingerprint::builder().part(b"POST").part(b"/payments").part(b"{\"eur\":11}").finish();
/// assert_ne!(a, b);
/// // Parts are length-prefixed: moving a byte from one part to the next changes the print.
/// let c = Fingerprint::builder().part(b"POST/").part(b"payments").part(b"{\"eur\":10}").finish();
/// assert_ne!(a, c);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub(crate) [u8; 32]);

/// Builds a [`Fingerprint`] part by part.
#[derive(Clone, Debug, Default)]
pub struct FingerprintBuilder {
    hasher: Sha256,
}

impl Fingerprint {
    /// A builder.
    #[must_use]
    pub fn builder() -> FingerprintBuilder {
        FingerprintBuilder::default()
    }

    /// The fingerprint of a single byte string.
    #[must_use]
    pub fn of(bytes: &[u8]) -> Self {
        Self::builder().part(bytes).finish()
    }

    /// The 32 bytes.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// From 32 bytes.
    #[must_use]
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
}

impl FingerprintBuilder {
    /// Adds a part, length-prefixed so that parts cannot run into each other.
    #[must_use]
    pub fn part(mut self, bytes: &[u8]) -> Self {
        self.hasher.update((bytes.len() as u64).to_be_bytes());
        self.hasher.update(bytes);
        self
    }

    /// The fingerprint.
    #[must_use]
    pub fn finish(self) -> Fingerprint {
        Fingerprint(self.hasher.finalize().into())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint(")?;
        for byte in &self.0[..8] {
            write!(f, "{byte:02x}")?;
        }
        write!(f, "…)")
    }
}
