//! The `Idempotency-Key` header: a structured-field string (`"…"`) or a bare token.

use std::fmt;

/// The longest key accepted, in bytes (after unquoting). Stripe allows 255.
pub const MAX_KEY_LEN: usize = 255;

/// A parsed, validated idempotency key.
///
/// ```
/// use steadfast_idempotency::IdempotencyKey;
///
/// let quoted = IdempotencyKey::parse(br#""8e03978e-40d5-43e8-bc93-6894a57f9324""#).unwrap();
/// let bare = IdempotencyKey::parse(b"8e03978e-40d5-43e8-bc93-6894a57f9324").unwrap();
/// assert_eq!(quoted, bare);
/// assert!(IdempotencyKey::parse(b"").is_err());
/// assert!(IdempotencyKey::parse(b"two words").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

/// Why a key was refused: every case answers `400 Bad Request`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyError {
    /// The header is empty, or the quoted string is.
    Empty,
    /// Longer than [`MAX_KEY_LEN`] bytes.
    TooLong,
    /// A quoted string without its closing quote, or with a bad escape.
    Unterminated,
    /// A byte outside visible ASCII (a bare key also refuses `"` and `\`), or text after a
    /// closing quote.
    InvalidByte(u8),
    /// The header appears more than once.
    Repeated,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::Empty => f.write_str("the Idempotency-Key is empty"),
            KeyError::TooLong => {
                write!(f, "the Idempotency-Key is longer than {MAX_KEY_LEN} bytes")
            }
            KeyError::Unterminated => {
                f.write_str("the Idempotency-Key is a quoted string that does not end well")
            }
            KeyError::InvalidByte(byte) => {
                write!(
                    f,
                    "the Idempotency-Key holds the byte 0x{byte:02x}, not allowed there"
                )
            }
            KeyError::Repeated => f.write_str("the Idempotency-Key header appears more than once"),
        }
    }
}

impl std::error::Error for KeyError {}

impl IdempotencyKey {
    /// Parses a header value: an RFC 8941 string (`"…"`, printable ASCII, `\"` and `\\`
    /// escapes) or, as many clients send it, a bare run of visible ASCII. Surrounding spaces
    /// are ignored.
    ///
    /// # Errors
    ///
    /// A [`KeyError`] saying what is wrong; never a panic, whatever the bytes.
    pub fn parse(value: &[u8]) -> Result<Self, KeyError> {
        let value = trim(value);
        let key = match value.first() {
            None => return Err(KeyError::Empty),
            Some(b'"') => unquote(&value[1..])?,
            Some(_) => {
                if let Some(&byte) = value
                    .iter()
                    .find(|&&b| !(0x21..=0x7e).contains(&b) || b == b'"' || b == b'\\')
                {
                    return Err(KeyError::InvalidByte(byte));
                }
                // Visible ASCII only: the bytes are UTF-8.
                value.iter().map(|&b| char::from(b)).collect()
            }
        };
        if key.is_empty() {
            return Err(KeyError::Empty);
        }
        if key.len() > MAX_KEY_LEN {
            return Err(KeyError::TooLong);
        }
        Ok(Self(key))
    }

    /// The key, unquoted.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn trim(value: &[u8]) -> &[u8] {
    let start = value
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(start, |i| i + 1);
    &value[start..end.max(start)]
}

fn unquote(rest: &[u8]) -> Result<String, KeyError> {
    let mut key = String::with_capacity(rest.len().min(MAX_KEY_LEN + 1));
    let mut bytes = rest.iter();
    loop {
        match bytes.next() {
            None => return Err(KeyError::Unterminated),
            Some(b'"') => break,
            Some(b'\\') => match bytes.next() {
                Some(&escaped @ (b'"' | b'\\')) => key.push(char::from(escaped)),
                _ => return Err(KeyError::Unterminated),
            },
            Some(&byte) if (0x20..=0x7e).contains(&byte) => key.push(char::from(byte)),
            Some(&byte) => return Err(KeyError::InvalidByte(byte)),
        }
        if key.len() > MAX_KEY_LEN {
            return Err(KeyError::TooLong);
        }
    }
    match bytes.next() {
        None => Ok(key),
        Some(&byte) => Err(KeyError::InvalidByte(byte)),
    }
}

impl fmt::Debug for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("IdempotencyKey").field(&self.0).finish()
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<&str> for IdempotencyKey {
    type Error = KeyError;

    fn try_from(value: &str) -> Result<Self, KeyError> {
        Self::parse(value.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        assert_eq!(IdempotencyKey::parse(b"  abc  ").unwrap().as_str(), "abc");
        assert_eq!(
            IdempotencyKey::parse(br#""a \"b\" \\ c""#)
                .unwrap()
                .as_str(),
            r#"a "b" \ c"#
        );
        assert_eq!(IdempotencyKey::parse(br#""""#), Err(KeyError::Empty));
        assert_eq!(
            IdempotencyKey::parse(br#""abc"#),
            Err(KeyError::Unterminated)
        );
        assert_eq!(
            IdempotencyKey::parse(br#""a\nb""#),
            Err(KeyError::Unterminated)
        );
        assert_eq!(
            IdempotencyKey::parse(br#""abc"x"#),
            Err(KeyError::InvalidByte(b'x'))
        );
        assert_eq!(
            IdempotencyKey::parse(b"a\xffb"),
            Err(KeyError::InvalidByte(0xff))
        );
        assert_eq!(IdempotencyKey::parse(&[b'k'; 256]), Err(KeyError::TooLong));
        assert!(IdempotencyKey::parse(&[b'k'; 255]).is_ok());
        let mut long = vec![b'"'];
        long.extend([b'k'; 300]);
        long.push(b'"');
        assert_eq!(IdempotencyKey::parse(&long), Err(KeyError::TooLong));
    }
}
