use steadfast_macros::cached;

#[cached(ttl = "5m")]
async fn load(a: u64, b: u64) -> Result<u64, String> {
    Ok(a + b)
}

#[cached(ttl = "5m", stale_if_error = "0s")]
async fn zero(a: u64) -> Result<u64, String> {
    Ok(a)
}

#[cached(ttl = "5m", time_to_idle = "1m")]
async fn other(a: u64) -> Result<u64, String> {
    Ok(a)
}

#[cached(ttl = "5m")]
async fn plain(a: u64) -> u64 {
    a
}

fn main() {}

#[cached(ttl = "5m", negative_ttl = "1m")]
async fn not_optional(a: u64) -> Result<u64, String> {
    Ok(a)
}
