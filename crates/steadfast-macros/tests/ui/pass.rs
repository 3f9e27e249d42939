use std::sync::LazyLock;
use steadfast_idempotency::{Idempotency, IdempotencyKey, Refusal};
use steadfast_macros::idempotent;

static ENGINE: LazyLock<Idempotency> = LazyLock::new(Idempotency::in_memory);

struct Failed;
impl From<Refusal> for Failed {
    fn from(_: Refusal) -> Self {
        Failed
    }
}

#[idempotent(engine = ENGINE, key = key, ttl = "90s")]
async fn once(key: IdempotencyKey, amount: u32) -> Result<u32, Failed> {
    Ok(amount)
}

fn main() {
    let _ = once;
}
