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

#[cached(ttl = "1m", negative_ttl = "10s")]
async fn maybe(mut id: u64) -> Result<Option<u64>, Failed> {
    id += 1;
    Ok(Some(id))
}

fn main() {
    let _ = (one, two, maybe);
}
