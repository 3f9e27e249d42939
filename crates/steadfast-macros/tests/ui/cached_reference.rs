use steadfast_macros::cached;

#[cached(ttl = "5m")]
async fn load(name: &str) -> Result<String, String> {
    Ok(name.to_owned())
}

fn main() {}
