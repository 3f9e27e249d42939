//! Endpoint keys: `"GET /recommendations"`, `"/health"` (any method), or a gRPC method
//! `"/shop.Catalog/Recommend"`.

/// Splits a key into its method (if any) and path.
pub(crate) fn parse(key: &str) -> Result<(Option<&str>, &str), String> {
    let (method, path) = match key.split_once(' ') {
        Some((method, path)) => (Some(method), path.trim_start()),
        None => (None, key),
    };
    if let Some(method) = method {
        if method.is_empty() || method.len() > 16 || !method.bytes().all(|b| b.is_ascii_uppercase())
        {
            return Err(format!(
                "{method:?} is not a method: write \"GET /path\", \"/path\" or \"/package.Service/Method\""
            ));
        }
    }
    if !path.starts_with('/') || path.contains(char::is_whitespace) {
        return Err(format!(
            "the path {path:?} must start with '/' and hold no spaces"
        ));
    }
    Ok((method, path))
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn keys() {
        assert_eq!(parse("GET /a/{id}"), Ok((Some("GET"), "/a/{id}")));
        assert_eq!(
            parse("/shop.Catalog/Recommend"),
            Ok((None, "/shop.Catalog/Recommend"))
        );
        assert!(parse("get /a").is_err());
        assert!(parse("GET a").is_err());
        assert!(parse("").is_err());
        assert!(parse("GET /a b").is_err());
    }
}
