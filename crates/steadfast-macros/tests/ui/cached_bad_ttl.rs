use steadfast_macros::cached;

#[cached(ttl = "five minutes")]
async fn load(id: u64) -> Result<u64, String> {
    Ok(id)
}

fn main() {}
