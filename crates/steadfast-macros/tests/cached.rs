//! `#[cached]` at run time: hits, one load for a herd, errors never cached, `None` kept as a
//! negative entry, stale-if-error on a cache of one's own with a mock clock, `map_err`.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use steadfast_cache::{Error, TieredCache};
use steadfast_core::{Clock, MockClock};
use steadfast_macros::cached;

#[derive(Debug, Clone, PartialEq)]
enum DbError {
    Down,
    Cache(String),
}

impl From<Error<DbError>> for DbError {
    fn from(error: Error<DbError>) -> Self {
        match error {
            Error::Load(error) => (*error).clone(),
            other => DbError::Cache(format!("{other:?}")),
        }
    }
}

static PRODUCT_QUERIES: AtomicU32 = AtomicU32::new(0);
static DOWN: AtomicU32 = AtomicU32::new(0);

#[cached(ttl = "5m", key = format!("{shop}/{id}"))]
async fn product(shop: u32, id: u64) -> Result<String, DbError> {
    PRODUCT_QUERIES.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(20)).await;
    if DOWN.load(Ordering::SeqCst) == 1 {
        return Err(DbError::Down);
    }
    Ok(format!("product {shop}/{id}"))
}

#[tokio::test]
async fn hits_herds_and_errors() {
    assert_eq!(product(1, 7).await.unwrap(), "product 1/7");
    assert_eq!(product(1, 7).await.unwrap(), "product 1/7");
    assert_eq!(PRODUCT_QUERIES.load(Ordering::SeqCst), 1);
    let herd: Vec<_> = (0..100).map(|_| tokio::spawn(product(1, 8))).collect();
    for call in herd {
        assert_eq!(call.await.unwrap().unwrap(), "product 1/8");
    }
    assert_eq!(PRODUCT_QUERIES.load(Ordering::SeqCst), 2);
    // An error is answered, never kept: the next call tries again.
    DOWN.store(1, Ordering::SeqCst);
    assert_eq!(product(2, 1).await, Err(DbError::Down));
    DOWN.store(0, Ordering::SeqCst);
    assert_eq!(product(2, 1).await.unwrap(), "product 2/1");
    assert_eq!(PRODUCT_QUERIES.load(Ordering::SeqCst), 4);
}

static LOOKUPS: AtomicU32 = AtomicU32::new(0);

#[cached(ttl = "1m", negative_ttl = "30s", name = "users_by_email")]
async fn user_id(email: String) -> Result<Option<u64>, DbError> {
    LOOKUPS.fetch_add(1, Ordering::SeqCst);
    Ok((email == "ann@example.com").then_some(1))
}

#[tokio::test]
async fn none_is_kept_as_a_negative_entry() {
    for _ in 0..3 {
        assert_eq!(user_id("bob@example.com".into()).await, Ok(None));
        assert_eq!(user_id("ann@example.com".into()).await, Ok(Some(1)));
    }
    assert_eq!(LOOKUPS.load(Ordering::SeqCst), 2);
}

static MOCK: LazyLock<(Clock, MockClock)> = LazyLock::new(Clock::mock);
static PRICES: LazyLock<TieredCache<u64, u32>> = LazyLock::new(|| {
    TieredCache::builder("prices")
        .ttl(Duration::from_secs(60))
        .stale_if_error(Duration::from_secs(3600))
        .clock(MOCK.0.clone())
        .build()
        .unwrap()
});
static PRICE_DOWN: AtomicU32 = AtomicU32::new(0);

fn to_text(error: Error<Arc<str>>) -> Arc<str> {
    match error {
        Error::Load(error) => (*error).clone(),
        other => other.to_string().into(),
    }
}

#[cached(cache = PRICES, key = sku, map_err = to_text)]
async fn price(sku: u64) -> Result<u32, Arc<str>> {
    if PRICE_DOWN.load(Ordering::SeqCst) == 1 {
        return Err("pricing is down".into());
    }
    Ok(100 + u32::try_from(sku).unwrap())
}

#[tokio::test]
async fn a_cache_of_ones_own_answers_stale_when_the_body_fails() {
    assert_eq!(price(5).await, Ok(105));
    MOCK.1.advance(Duration::from_secs(61));
    PRICE_DOWN.store(1, Ordering::SeqCst);
    assert_eq!(
        price(5).await,
        Ok(105),
        "stale within the stale-if-error window"
    );
    assert_eq!(price(6).await, Err("pricing is down".into()));
}
