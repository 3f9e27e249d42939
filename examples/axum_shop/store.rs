//! Where the shop keeps what instances share: idempotency records in memory or in Redis,
//! behind one type, and the Redis connections.

use std::time::Duration;
use steadfast::idempotency::record::{Completed, Record, Token};
use steadfast::idempotency::store::{Claim, MemoryStore, Store, StoreError, StoreKey};
use steadfast::idempotency::Fingerprint;

/// The order records' store: one type for both backends, so the shop is not generic over it.
#[derive(Clone, Debug)]
pub enum ShopStore {
    /// In this process: one instance only.
    Memory(MemoryStore),
    /// In Redis: shared by every instance.
    #[cfg(feature = "redis")]
    Redis(steadfast::idempotency::store::RedisStore),
}

impl ShopStore {
    /// A store in this process.
    pub fn memory() -> Self {
        ShopStore::Memory(MemoryStore::default())
    }

    /// A store in Redis.
    #[cfg(feature = "redis")]
    pub fn redis(redis: &Redis) -> Self {
        ShopStore::Redis(steadfast::idempotency::store::RedisStore::new(
            redis.client.clone(),
        ))
    }
}

impl Store for ShopStore {
    async fn claim(
        &self,
        key: &StoreKey,
        fingerprint: Fingerprint,
        lease: Duration,
    ) -> Result<Claim, StoreError> {
        match self {
            ShopStore::Memory(store) => store.claim(key, fingerprint, lease).await,
            #[cfg(feature = "redis")]
            ShopStore::Redis(store) => store.claim(key, fingerprint, lease).await,
        }
    }

    async fn complete(
        &self,
        key: &StoreKey,
        token: Token,
        completed: &Completed,
        retention: Duration,
    ) -> Result<bool, StoreError> {
        match self {
            ShopStore::Memory(store) => store.complete(key, token, completed, retention).await,
            #[cfg(feature = "redis")]
            ShopStore::Redis(store) => store.complete(key, token, completed, retention).await,
        }
    }

    async fn release(&self, key: &StoreKey, token: Token) -> Result<bool, StoreError> {
        match self {
            ShopStore::Memory(store) => store.release(key, token).await,
            #[cfg(feature = "redis")]
            ShopStore::Redis(store) => store.release(key, token).await,
        }
    }

    async fn get(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        match self {
            ShopStore::Memory(store) => store.get(key).await,
            #[cfg(feature = "redis")]
            ShopStore::Redis(store) => store.get(key).await,
        }
    }
}

#[cfg(feature = "redis")]
pub use self::redis::Redis;

#[cfg(feature = "redis")]
mod redis {
    use std::time::Duration;

    use steadfast::cache::fred::clients::Client;
    use steadfast::cache::fred::interfaces::ClientLike;
    use steadfast::cache::fred::types::config::{Config, ReconnectPolicy};
    use steadfast::cache::fred::types::Builder;
    use steadfast::cache::remote::RedisTier;
    use steadfast::core::BoxError;

    /// How long one Redis command may take before it fails: a Redis that hangs is a Redis
    /// that is down, and an order waits on it at most this, a few times over.
    const COMMAND_TIMEOUT: Duration = Duration::from_millis(250);

    /// The shop's Redis connections: commands, and the cache's invalidation notices.
    #[derive(Clone, Debug)]
    pub struct Redis {
        pub(crate) client: Client,
        tier: RedisTier,
    }

    impl Redis {
        /// Connects to `url` (`redis://127.0.0.1:6379`). The clients reconnect by themselves
        /// every 100 ms after a loss, without end.
        pub async fn connect(url: &str) -> Result<Self, BoxError> {
            let config = Config::from_url(url)?;
            let builder = || {
                let mut builder = Builder::from_config(config.clone());
                builder
                    .with_performance_config(|performance| {
                        performance.default_command_timeout = COMMAND_TIMEOUT;
                    })
                    .with_connection_config(|connection| {
                        connection.connection_timeout = COMMAND_TIMEOUT;
                        connection.internal_command_timeout = COMMAND_TIMEOUT;
                        // A retried write could run twice; the callers decide about retries.
                        connection.max_command_attempts = 1;
                    })
                    .set_policy(ReconnectPolicy::new_constant(0, 100));
                builder
            };
            let client = builder().build()?;
            let subscriber = builder().build_subscriber_client()?;
            client.init().await?;
            subscriber.init().await?;
            let tier = RedisTier::with_notices(client.clone(), subscriber).await?;
            Ok(Self { client, tier })
        }

        /// The products cache's shared tier.
        pub fn tier(&self) -> RedisTier {
            self.tier.clone()
        }
    }
}
