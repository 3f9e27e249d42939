use std::time::Duration;
use steadfast_breaker::CircuitBreaker;
use steadfast_cache::{Stale, Status, TieredCache};
use steadfast_core::{Clock, Reason};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::test]
async fn reasons() {
    let (clock, mock) = Clock::mock();
    let cache: TieredCache<u64, String> = TieredCache::builder("s")
        .ttl(Duration::from_secs(1))
        .stale_if_error(Duration::from_secs(60))
        .clock(clock)
        .build()
        .unwrap();
    cache
        .get_with(1, || async { Ok::<_, BoxError>("a".to_owned()) })
        .await
        .unwrap();
    mock.advance(Duration::from_secs(2));
    let breaker = CircuitBreaker::builder("db").build().unwrap();
    breaker.force_open();
    let b = breaker.clone();
    let r = cache
        .get_with(1, move || async move {
            b.call_async(async { Ok::<String, std::io::Error>("x".into()) })
                .await
        })
        .await
        .unwrap();
    println!("call_async: {:?}", r.status());
    let b = breaker.clone();
    let r = cache
        .get_with(1, move || async move {
            b.call_async(async { Ok::<String, std::io::Error>("x".into()) })
                .await
                .map_err(BoxError::from)
        })
        .await
        .unwrap();
    println!("call_async boxed: {:?}", r.status());
    let b = breaker.clone();
    let r = cache
        .get_with(1, move || async move {
            let _p = b.try_acquire()?;
            Ok::<String, BoxError>("x".into())
        })
        .await
        .unwrap();
    println!("try_acquire boxed: {:?}", r.status());
    assert_eq!(
        r.status(),
        Status::Stale(Stale::LoadFailed(Reason::BreakerOpen))
    );
}
