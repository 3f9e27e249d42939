use std::sync::LazyLock;
use steadfast_idempotency::{Idempotency, IdempotencyKey};
use steadfast_macros::idempotent;

static ENGINE: LazyLock<Idempotency> = LazyLock::new(Idempotency::in_memory);

struct Ledger;

impl Ledger {
    #[idempotent(engine = ENGINE, key = key)]
    async fn once(&self, key: IdempotencyKey) -> Result<u32, ()> {
        Ok(1)
    }
}

fn main() {}
