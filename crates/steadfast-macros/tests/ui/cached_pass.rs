use steadfast_macros::cached;

#[derive(Debug)]
struct Failed;
impl From<steadfast_cache::Error<Failed>> for Failed {
    fn from(_: steadfast_cache::Error<Failed>) -> Self {
        Failed
    }
}

#[cached(ttl = "90s", stale_if_error = "1h", stale_while_revalidate = "10s", capacity = 500)]
async fn one(id: u64) -> Result<String, Failed> {
    Ok(id.to_string())
}

#[cached(ttl = "5m", key = format!("{a}:{b}"), name = "pairs")]
pub async fn two(a: String, b: u32) -> Result<Vec<u8>, Failed> {
    Ok(format!("{a}{b}").into_bytes())
}

fn main() {
    let _ = (one, two);
}
