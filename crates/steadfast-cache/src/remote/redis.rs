//! The Redis tier, on `fred`: one `MGET` per read, Lua scripts for versioned writes, pub/sub
//! for notices.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, LazyLock, Weak};
use std::time::Duration;

use bytes::Bytes;
use fred::clients::{Client, SubscriberClient};
use fred::error::Error as FredError;
use fred::interfaces::{ClientLike, EventInterface, KeysInterface, PubsubInterface};
use fred::types::scripts::Script;
use fred::types::{Expiration, SetOptions, Value};
use parking_lot::Mutex;
use tokio::sync::broadcast::error::RecvError;

use super::{BoxFuture, Fetched, Fill, Incoming, Listener, RemoteTier, Version};
use crate::error::RemoteError;

/// The channel notices go out on unless told otherwise.
pub const DEFAULT_CHANNEL: &str = "steadfast:cache:notices";

/// The shared tier in Redis (one server, or a cluster: every command touches one hash slot).
///
/// Built from a `fred` [`Client`] the caller configured and connected, and, for cross-instance
/// invalidation, a [`SubscriberClient`] on the same server:
///
/// ```no_run
/// use std::time::Duration;
/// use fred::prelude::*;
/// use steadfast_cache::remote::RedisTier;
/// use steadfast_cache::TieredCache;
///
/// # async fn run() -> Result<(), fred::error::Error> {
/// let config = Config::from_url("redis://127.0.0.1:6379")?;
/// let policy = ReconnectPolicy::new_exponential(0, 100, 2_000, 2);
/// let client = Builder::from_config(config.clone()).set_policy(policy.clone()).build()?;
/// // Room for bursts of notices: a listener that falls behind loses some, and then marks its
/// // whole L1 for revalidation.
/// let subscriber = Builder::from_config(config)
///     .set_policy(policy)
///     .with_performance_config(|performance| performance.broadcast_channel_capacity = 4096)
///     .build_subscriber_client()?;
/// client.init().await?;
/// subscriber.init().await?;
/// let tier = RedisTier::with_notices(client, subscriber).await?;
/// let cache: TieredCache<u64, String> = TieredCache::builder("products")
///     .remote(tier.clone())
///     .build()
///     .expect("a valid cache");
/// # let _ = cache;
/// # Ok(())
/// # }
/// ```
///
/// # Keys
///
/// Beside each entry `sf:{cache:key}` the tier keeps `sf:{cache:key}:v`, a random version every
/// write and delete replaces (kept for two hours past the last change: longer than any load may
/// run), and `sf:{cache:key}:l`, the load lock. The three share the entry's hash tag, so one
/// `MGET` reads them together, on a cluster too.
///
/// # Round trips
///
/// A read of one key is one `MGET`; of many keys, one `MGET` on a single server, and one per
/// hash slot (pipelined) on a cluster. A fill, a write and a delete are one script each; a fill
/// of many keys is one pipeline.
///
/// # Reconnection
///
/// The tier sets no timeouts (the cache times every call). Give both clients a reconnect
/// policy. When the subscriber reconnects, the tier subscribes again (retrying until it can)
/// and then tells every cache, which marks its L1 for revalidation: notices sent meanwhile
/// were lost. The same happens when the subscriber's message buffer overflows (fred keeps 32
/// messages by default; raise `broadcast_channel_capacity` for bursts of writes), and when the
/// subscriber is closed, after which the tier hears nothing more.
///
/// Every cache on one channel hears every notice on it: give each service its own channel
/// ([`with_notices_on`](Self::with_notices_on)) when many share one Redis.
#[derive(Clone)]
pub struct RedisTier {
    inner: Arc<Shared>,
}

struct Shared {
    client: Client,
    channel: String,
    listeners: Mutex<Vec<Weak<dyn Listener>>>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Some(task) = self.task.lock().take() {
            task.abort();
        }
    }
}

impl fmt::Debug for RedisTier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisTier")
            .field("channel", &self.inner.channel)
            .field("listeners", &self.inner.listeners.lock().len())
            .finish_non_exhaustive()
    }
}

impl RedisTier {
    /// A tier without notices: other instances learn of writes only when entries expire.
    #[must_use]
    pub fn new(client: Client) -> Self {
        Self::build(client, DEFAULT_CHANNEL.to_owned())
    }

    /// A tier whose writes and deletes reach every other instance's L1, through pub/sub on
    /// [`DEFAULT_CHANNEL`].
    ///
    /// # Errors
    ///
    /// When the subscription fails.
    pub async fn with_notices(
        client: Client,
        subscriber: SubscriberClient,
    ) -> Result<Self, FredError> {
        Self::with_notices_on(client, subscriber, DEFAULT_CHANNEL).await
    }

    /// [`with_notices`](Self::with_notices) on a channel of your own (to keep apart fleets that
    /// share one Redis).
    ///
    /// # Errors
    ///
    /// When the subscription fails.
    pub async fn with_notices_on(
        client: Client,
        subscriber: SubscriberClient,
        channel: &str,
    ) -> Result<Self, FredError> {
        let tier = Self::build(client, channel.to_owned());
        let mut messages = subscriber.message_rx();
        let mut reconnects = subscriber.reconnect_rx();
        subscriber.subscribe(channel).await?;
        let shared = Arc::downgrade(&tier.inner);
        let channel = channel.to_owned();
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    message = messages.recv() => match message {
                        Ok(message) if *message.channel == *channel => {
                            let Some(shared) = shared.upgrade() else { return };
                            if let Some(bytes) = message.value.as_bytes() {
                                shared.tell(Incoming::Notice(bytes));
                            }
                        }
                        Ok(_) => {}
                        // Notices were dropped: as good as a reconnection.
                        Err(RecvError::Lagged(_)) => {
                            let Some(shared) = shared.upgrade() else { return };
                            shared.tell(Incoming::Reconnected);
                        }
                        Err(RecvError::Closed) => {
                            if let Some(shared) = shared.upgrade() {
                                shared.tell(Incoming::Reconnected);
                            }
                            return;
                        }
                    },
                    reconnect = reconnects.recv() => {
                        if matches!(reconnect, Err(RecvError::Closed)) {
                            if let Some(shared) = shared.upgrade() {
                                shared.tell(Incoming::Reconnected);
                            }
                            return;
                        }
                        // Subscribe again first, then tell the caches: an entry loaded between
                        // their resync and the subscription could miss a notice.
                        let mut delay = Duration::from_millis(20);
                        while subscriber.resubscribe_all().await.is_err() {
                            if shared.strong_count() == 0 {
                                return;
                            }
                            tokio::time::sleep(delay).await;
                            delay = (delay * 2).min(Duration::from_secs(2));
                        }
                        let Some(shared) = shared.upgrade() else { return };
                        shared.tell(Incoming::Reconnected);
                    }
                }
            }
        });
        *tier.inner.task.lock() = Some(task);
        Ok(tier)
    }

    fn build(client: Client, channel: String) -> Self {
        Self {
            inner: Arc::new(Shared {
                client,
                channel,
                listeners: Mutex::new(Vec::new()),
                task: Mutex::new(None),
            }),
        }
    }

    /// The client the tier uses.
    #[must_use]
    pub fn client(&self) -> &Client {
        &self.inner.client
    }
}

impl Shared {
    fn tell(&self, incoming: Incoming<'_>) {
        let listeners: Vec<Arc<dyn Listener>> = {
            let mut held = self.listeners.lock();
            held.retain(|listener| listener.strong_count() > 0);
            held.iter().filter_map(Weak::upgrade).collect()
        };
        for listener in listeners {
            listener.hear(incoming);
        }
    }
}

/// Writes ARGV[1] under KEYS[1] for ARGV[2] ms if KEYS[2] (the version) is still ARGV[3]
/// (empty for "no version"). Answers 1 if written.
const FILL_LUA: &str = r"
local version = redis.call('GET', KEYS[2]) or ''
if version ~= ARGV[3] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
";

/// Writes ARGV[1] under KEYS[1] for ARGV[2] ms and sets the version to ARGV[4], a fresh random
/// value (kept ARGV[3] ms). Random rather than counted: a counter that expired would start
/// again at 1 and could meet a version a slow load read long ago.
const PUT_LUA: &str = r"
redis.call('SET', KEYS[2], ARGV[4], 'PX', ARGV[3])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
";

/// Deletes KEYS[1] and sets the version to ARGV[2], a fresh random value (kept ARGV[1] ms).
const DELETE_LUA: &str = r"
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[1])
redis.call('DEL', KEYS[1])
return 1
";

/// Deletes the lock KEYS[1] if it holds ARGV[1].
const UNLOCK_LUA: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

static FILL: LazyLock<Script> = LazyLock::new(|| Script::from_lua(FILL_LUA));
static PUT: LazyLock<Script> = LazyLock::new(|| Script::from_lua(PUT_LUA));
static DELETE: LazyLock<Script> = LazyLock::new(|| Script::from_lua(DELETE_LUA));
static UNLOCK: LazyLock<Script> = LazyLock::new(|| Script::from_lua(UNLOCK_LUA));

/// How long a version outlives the entry's last change: longer than any load may run (the
/// cache refuses settings past an hour), so a load that read the old version sees the change.
const VERSION_MILLIS: i64 = 2 * 60 * 60 * 1000;

/// A version no earlier write used (with overwhelming likelihood).
fn new_version() -> Value {
    Value::from(format!("{:016x}", fastrand::u64(..)))
}

fn version_key(key: &str) -> String {
    format!("{key}:v")
}

fn lock_key(key: &str) -> String {
    format!("{key}:l")
}

/// A duration as a `PX` argument: at least 1 ms (Redis refuses zero), within what it accepts.
fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis().clamp(1, 1 << 44)).unwrap_or(1 << 44)
}

fn failed(error: FredError) -> RemoteError {
    RemoteError::failed(error)
}

fn bytes_of(value: Value) -> Option<Bytes> {
    match value {
        Value::Bytes(bytes) => Some(bytes),
        Value::String(string) => Some(string.into_inner()),
        Value::Integer(number) => Some(Bytes::from(number.to_string())),
        _ => None,
    }
}

impl Shared {
    /// `MGET` of the keys: one command on a single server, one per hash slot, pipelined, on a
    /// cluster (a multi-key command must stay within one slot there).
    async fn mget(&self, keys: Vec<String>) -> Result<Vec<Value>, RemoteError> {
        if !self.client.is_clustered() {
            let values: Vec<Value> = self.client.mget(keys).await.map_err(failed)?;
            return Ok(values);
        }
        let mut slots: BTreeMap<u16, Vec<usize>> = BTreeMap::new();
        for (index, key) in keys.iter().enumerate() {
            slots
                .entry(fred::util::redis_keyslot(key.as_bytes()))
                .or_default()
                .push(index);
        }
        let pipeline = self.client.pipeline();
        for indexes in slots.values() {
            let group: Vec<String> = indexes.iter().map(|&index| keys[index].clone()).collect();
            let () = pipeline.mget(group).await.map_err(failed)?;
        }
        let answers: Vec<Result<Value, FredError>> = pipeline.try_all().await;
        let mut values = vec![Value::Null; keys.len()];
        for (indexes, answer) in slots.values().zip(answers) {
            let answer = answer.map_err(failed)?;
            let group = match answer {
                Value::Array(group) => group,
                single if indexes.len() == 1 => vec![single],
                _ => {
                    return Err(RemoteError::failed(
                        "MGET answered something else than an array",
                    ))
                }
            };
            for (&index, value) in indexes.iter().zip(group) {
                values[index] = value;
            }
        }
        Ok(values)
    }

    async fn fill_all(&self, fills: &[Fill]) -> Result<usize, RemoteError> {
        if let [fill] = fills {
            let written: i64 = FILL
                .evalsha_with_reload(&self.client, fill_keys(fill), fill_args(fill))
                .await
                .map_err(failed)?;
            return Ok(usize::from(written == 1));
        }
        // Scripts do not pipeline in fred; concurrent commands share the connection, which
        // writes them back to back all the same.
        let mut running = tokio::task::JoinSet::new();
        for fill in fills {
            let client = self.client.clone();
            let (keys, args) = (fill_keys(fill), fill_args(fill));
            running.spawn(async move {
                FILL.evalsha_with_reload::<i64, _, _>(&client, keys, args)
                    .await
            });
        }
        let mut written = 0;
        let mut first_error = None;
        while let Some(joined) = running.join_next().await {
            match joined {
                Ok(Ok(answer)) => written += usize::from(answer == 1),
                Ok(Err(error)) => {
                    first_error.get_or_insert(failed(error));
                }
                Err(error) => {
                    first_error.get_or_insert(RemoteError::failed(error));
                }
            }
        }
        match first_error {
            Some(error) if written == 0 => Err(error),
            _ => Ok(written),
        }
    }
}

fn fill_keys(fill: &Fill) -> Vec<String> {
    vec![fill.key.clone(), version_key(&fill.key)]
}

fn fill_args(fill: &Fill) -> Vec<Value> {
    vec![
        Value::Bytes(fill.value.clone()),
        Value::Integer(millis(fill.ttl)),
        Value::Bytes(fill.version.0.clone().unwrap_or_default()),
    ]
}

impl RemoteTier for RedisTier {
    fn fetch<'a>(&'a self, keys: &'a [String]) -> BoxFuture<'a, Result<Vec<Fetched>, RemoteError>> {
        Box::pin(async move {
            let mut all = Vec::with_capacity(keys.len() * 3);
            for key in keys {
                all.push(key.clone());
                all.push(version_key(key));
                all.push(lock_key(key));
            }
            let values = self.inner.mget(all).await?;
            let mut values = values.into_iter();
            let mut fetched = Vec::with_capacity(keys.len());
            for _ in keys {
                let value = values.next().and_then(bytes_of);
                let version = Version(values.next().and_then(bytes_of));
                let locked = values.next().and_then(bytes_of).is_some();
                fetched.push(Fetched {
                    value,
                    version,
                    locked,
                });
            }
            Ok(fetched)
        })
    }

    fn fill<'a>(&'a self, fills: &'a [Fill]) -> BoxFuture<'a, Result<usize, RemoteError>> {
        Box::pin(self.inner.fill_all(fills))
    }

    fn put<'a>(
        &'a self,
        key: &'a str,
        value: Bytes,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), RemoteError>> {
        Box::pin(async move {
            let args = vec![
                Value::Bytes(value),
                Value::Integer(millis(ttl)),
                Value::Integer(VERSION_MILLIS),
                new_version(),
            ];
            let _: i64 = PUT
                .evalsha_with_reload(
                    &self.inner.client,
                    vec![key.to_owned(), version_key(key)],
                    args,
                )
                .await
                .map_err(failed)?;
            Ok(())
        })
    }

    fn delete<'a>(&'a self, keys: &'a [String]) -> BoxFuture<'a, Result<(), RemoteError>> {
        Box::pin(async move {
            for key in keys {
                let _: i64 = DELETE
                    .evalsha_with_reload(
                        &self.inner.client,
                        vec![key.clone(), version_key(key)],
                        vec![Value::Integer(VERSION_MILLIS), new_version()],
                    )
                    .await
                    .map_err(failed)?;
            }
            Ok(())
        })
    }

    fn lock<'a>(
        &'a self,
        key: &'a str,
        token: u64,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, RemoteError>> {
        Box::pin(async move {
            let answer: Value = self
                .inner
                .client
                .set(
                    lock_key(key),
                    token.to_string(),
                    Some(Expiration::PX(millis(ttl))),
                    Some(SetOptions::NX),
                    false,
                )
                .await
                .map_err(failed)?;
            Ok(!matches!(answer, Value::Null))
        })
    }

    fn unlock<'a>(&'a self, key: &'a str, token: u64) -> BoxFuture<'a, Result<(), RemoteError>> {
        Box::pin(async move {
            let _: i64 = UNLOCK
                .evalsha_with_reload(
                    &self.inner.client,
                    vec![lock_key(key)],
                    vec![token.to_string()],
                )
                .await
                .map_err(failed)?;
            Ok(())
        })
    }

    fn publish(&self, notice: Bytes) -> BoxFuture<'_, Result<(), RemoteError>> {
        Box::pin(async move {
            let _: i64 = self
                .inner
                .client
                .publish(self.inner.channel.as_str(), notice)
                .await
                .map_err(failed)?;
            Ok(())
        })
    }

    fn listen(&self, listener: Weak<dyn Listener>) {
        self.inner.listeners.lock().push(listener);
    }
}
