use std::sync::LazyLock;
use steadfast_cache::TieredCache;
use steadfast_macros::cached;

static CACHE: LazyLock<TieredCache<u64, u64>> =
    LazyLock::new(|| TieredCache::builder("c").build().unwrap());

#[cached(cache = CACHE, ttl = "5m")]
async fn load(id: u64) -> Result<u64, String> {
    Ok(id)
}

fn main() {}
