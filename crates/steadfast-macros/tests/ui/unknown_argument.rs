use std::sync::LazyLock;
use steadfast_idempotency::{Idempotency, IdempotencyKey};
use steadfast_macros::idempotent;

static ENGINE: LazyLock<Idempotency> = LazyLock::new(Idempotency::in_memory);

#[idempotent(engine = ENGINE, key = key, retries = 3)]
async fn once(key: IdempotencyKey) -> Result<u32, ()> {
    Ok(1)
}

fn main() {}
