//! The Redis store: one Lua script per operation, on the `fred` client the caller configures.

use std::fmt;
use std::sync::LazyLock;
use std::time::Duration;

use bytes::Bytes;
use fred::clients::Client;
use fred::error::Error as FredError;
use fred::interfaces::{KeysInterface, LuaInterface};
use fred::types::scripts::Script;
use fred::types::Value;

use super::{Claim, Store, StoreError, StoreKey};
use crate::record::{Completed, Record, Token};
use crate::Fingerprint;

/// Records in Redis, shared by every instance that uses the same server or cluster: a key
/// charged on one instance replays on all of them.
///
/// Built from a `fred` client the caller has configured and connected: a
/// [`Client`](fred::clients::Client) (the default type parameter) or a
/// [`Pool`](fred::clients::Pool), for one server or a cluster. Cloning the store clones the
/// client handle, which shares its connections.
///
/// # Round trips
///
/// Each operation is one command, a Lua script run atomically on the record's key (`EVALSHA`;
/// after a server restart or failover that lost the script cache, `NOSCRIPT` costs one extra
/// `EVAL`, which caches it again):
///
/// - [`claim`](Store::claim): one round trip; it reads the record and, if there is none, writes
///   the in-progress record with the lease as its expiry, in the same script;
/// - [`complete`](Store::complete) and [`release`](Store::release): one each, the fencing check
///   (the record must still be our claim's) and the write in the same script;
/// - [`get`](Store::get): one `GET`.
///
/// So a new key costs two round trips (claim, then complete), and a replay one (the claim
/// answers the completed record).
///
/// # Timeouts and reconnection
///
/// The store sets no timeouts of its own: they belong to the client's configuration. Set
/// `PerformanceConfig::default_command_timeout` so that a server that does not answer fails a
/// call (as [`StoreError::Unavailable`]) instead of holding it, and a
/// [`ReconnectPolicy`](fred::types::config::ReconnectPolicy) so the client comes back by itself
/// after a restart or a failover. While the client reconnects, commands wait in its queue
/// until the command timeout.
///
/// `ConnectionConfig::max_command_attempts` (three by default) resends a command whose
/// connection closed before its answer came back. A resent claim or completion that had in
/// fact been applied answers as if someone else had done it (`InFlight` with the request's own
/// fingerprint, or `Ok(false)`). Setting it to `1` turns those ambiguous outcomes into errors
/// instead.
///
/// ```no_run
/// use std::time::Duration;
/// use fred::prelude::*;
/// use steadfast_idempotency::store::RedisStore;
///
/// # async fn run() -> Result<(), fred::error::Error> {
/// let client = Builder::from_config(Config::from_url("redis://127.0.0.1:6379")?)
///     .with_performance_config(|performance| {
///         performance.default_command_timeout = Duration::from_millis(500);
///     })
///     .with_connection_config(|connection| {
///         connection.connection_timeout = Duration::from_secs(1);
///         connection.max_command_attempts = 1;
///     })
///     .set_policy(ReconnectPolicy::new_exponential(0, 100, 5_000, 2))
///     .build()?;
/// client.init().await?;
/// let store = RedisStore::new(client);
/// # let _ = store;
/// # Ok(())
/// # }
/// ```
///
/// # Durability
///
/// An acknowledged completion is only as durable as the server makes it. With Redis's default
/// persistence a crash loses the last second or more of writes, and a key whose completion was
/// lost runs again on its next retry. For no acknowledged loss, run the server with
/// `appendonly yes` and `appendfsync always`; with replicas, a failover can still lose writes
/// the old primary had acknowledged.
///
/// # Cluster
///
/// Every script touches only its record's key, and a [`StoreKey`] carries a `{hash tag}`, so
/// each operation runs on the one node that owns the key's slot: the store works on Redis
/// Cluster as it is, with a clustered client.
///
/// # Foreign data
///
/// A record whose bytes are not a record is [`StoreError::Corrupt`] for
/// [`claim`](Store::claim) and [`get`](Store::get); [`complete`](Store::complete) and
/// [`release`](Store::release) leave such a key alone and answer `Ok(false)`.
#[derive(Clone)]
pub struct RedisStore<C = Client> {
    client: C,
}

impl<C: fmt::Debug> fmt::Debug for RedisStore<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("client", &self.client)
            .finish()
    }
}

impl<C> RedisStore<C>
where
    C: LuaInterface + KeysInterface + Clone + Send + Sync + 'static,
{
    /// A store on `client`: a `fred` [`Client`](fred::clients::Client) or
    /// [`Pool`](fred::clients::Pool), configured (timeouts, reconnect policy) and connected by
    /// the caller.
    #[must_use]
    pub const fn new(client: C) -> Self {
        Self { client }
    }

    /// The client the store uses.
    #[must_use]
    pub const fn client(&self) -> &C {
        &self.client
    }

    /// Runs `script` on `key`: `EVALSHA`, then `EVAL` if the server does not have it cached.
    async fn run(
        &self,
        script: &Script,
        key: &StoreKey,
        args: Vec<Value>,
    ) -> Result<Value, StoreError> {
        let sha = script.sha1().clone();
        match self
            .client
            .evalsha::<Value, _, _, _>(sha, key.as_str(), args.clone())
            .await
        {
            Err(error) if error.details().starts_with("NOSCRIPT") => match script.lua() {
                Some(lua) => self
                    .client
                    .eval::<Value, _, _, _>(lua.clone(), key.as_str(), args)
                    .await
                    .map_err(unavailable),
                None => Err(unavailable(error)),
            },
            answer => answer.map_err(unavailable),
        }
    }
}

/// Reads the record's bytes, or claims the key: ARGV[1] the in-progress record, ARGV[2] the
/// lease in milliseconds. Answers the bytes held, or nil when it claimed.
const CLAIM_LUA: &str = r"
local held = redis.call('GET', KEYS[1])
if held then
  return held
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
";

/// Writes the completed record ARGV[1] for ARGV[3] milliseconds if the key is free or holds the
/// in-progress record of token ARGV[2] (8 bytes, big-endian). Answers 1 if written, else 0.
///
/// An in-progress record is exactly 45 bytes: `SFI1`, kind 0, 32 fingerprint bytes, the token.
const COMPLETE_LUA: &str = r"
local held = redis.call('GET', KEYS[1])
if held and not (string.len(held) == 45 and string.sub(held, 1, 5) == 'SFI1\0'
    and string.sub(held, 38, 45) == ARGV[2]) then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return 1
";

/// Deletes the key if it holds the in-progress record of token ARGV[1]. Answers 1 if deleted.
const RELEASE_LUA: &str = r"
local held = redis.call('GET', KEYS[1])
if held and string.len(held) == 45 and string.sub(held, 1, 5) == 'SFI1\0'
    and string.sub(held, 38, 45) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
";

static CLAIM: LazyLock<Script> = LazyLock::new(|| Script::from_lua(CLAIM_LUA));
static COMPLETE: LazyLock<Script> = LazyLock::new(|| Script::from_lua(COMPLETE_LUA));
static RELEASE: LazyLock<Script> = LazyLock::new(|| Script::from_lua(RELEASE_LUA));

/// The longest expiry sent: far beyond any lease or retention, well inside what Redis accepts.
const MAX_MILLIS: u128 = 1 << 44;

/// A duration as a `PX` argument: at least one millisecond (Redis refuses zero).
fn millis(duration: Duration) -> Value {
    // Within i64 by the clamp.
    Value::Integer(duration.as_millis().clamp(1, MAX_MILLIS) as i64)
}

fn token_bytes(token: Token) -> Value {
    Value::Bytes(Bytes::copy_from_slice(&token.get().to_be_bytes()))
}

fn unavailable(error: FredError) -> StoreError {
    StoreError::Unavailable(Box::new(error))
}

/// An answer of a shape the scripts never give.
#[derive(Debug)]
struct UnexpectedAnswer(&'static str);

impl fmt::Display for UnexpectedAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the Redis server answered {} where the store expected something else",
            self.0
        )
    }
}

impl std::error::Error for UnexpectedAnswer {}

fn unexpected(value: &Value) -> StoreError {
    let kind = match value {
        Value::Boolean(_) => "a boolean",
        Value::Integer(_) => "an integer",
        Value::Double(_) => "a double",
        Value::String(_) | Value::Bytes(_) => "a string",
        Value::Null => "nil",
        Value::Queued => "QUEUED",
        Value::Map(_) => "a map",
        Value::Array(_) => "an array",
    };
    StoreError::Unavailable(Box::new(UnexpectedAnswer(kind)))
}

/// The bytes of a string answer, `None` for nil.
fn bytes_of(value: Value) -> Result<Option<Bytes>, StoreError> {
    match value {
        Value::Null => Ok(None),
        Value::Bytes(bytes) => Ok(Some(bytes)),
        Value::String(string) => Ok(Some(string.into_inner())),
        other => Err(unexpected(&other)),
    }
}

/// A script's 1 or 0.
fn flag_of(value: &Value) -> Result<bool, StoreError> {
    match value {
        Value::Integer(1) => Ok(true),
        Value::Integer(0) => Ok(false),
        other => Err(unexpected(other)),
    }
}

fn decode(bytes: &[u8]) -> Result<Record, StoreError> {
    Record::decode(bytes).map_err(StoreError::Corrupt)
}

impl<C> Store for RedisStore<C>
where
    C: LuaInterface + KeysInterface + Clone + Send + Sync + 'static,
{
    async fn claim(
        &self,
        key: &StoreKey,
        fingerprint: Fingerprint,
        lease: Duration,
    ) -> Result<Claim, StoreError> {
        let token = Token::fresh();
        let record = Record::InProgress { token, fingerprint }.encode();
        let answer = self
            .run(&CLAIM, key, vec![Value::Bytes(record), millis(lease)])
            .await?;
        match bytes_of(answer)? {
            None => Ok(Claim::Acquired(token)),
            Some(held) => Ok(match decode(&held)? {
                Record::InProgress { fingerprint, .. } => Claim::InFlight(fingerprint),
                Record::Completed(completed) => Claim::Completed(completed),
            }),
        }
    }

    async fn complete(
        &self,
        key: &StoreKey,
        token: Token,
        completed: &Completed,
        retention: Duration,
    ) -> Result<bool, StoreError> {
        let record = Record::Completed(completed.clone()).encode();
        let args = vec![Value::Bytes(record), token_bytes(token), millis(retention)];
        flag_of(&self.run(&COMPLETE, key, args).await?)
    }

    async fn release(&self, key: &StoreKey, token: Token) -> Result<bool, StoreError> {
        flag_of(&self.run(&RELEASE, key, vec![token_bytes(token)]).await?)
    }

    async fn get(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        let answer: Value = self.client.get(key.as_str()).await.map_err(unavailable)?;
        bytes_of(answer)?.map(|bytes| decode(&bytes)).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The scripts find the token of an in-progress record by position: hold the encoding to it.
    #[test]
    fn scripts_match_the_in_progress_encoding() {
        let token = Token(0x0102_0304_0506_0708);
        let bytes = Record::InProgress {
            token,
            fingerprint: Fingerprint::of(b"request"),
        }
        .encode();
        assert_eq!(bytes.len(), 45);
        assert_eq!(&bytes[..5], b"SFI1\0");
        assert_eq!(&bytes[37..45], &token.get().to_be_bytes());
        for lua in [COMPLETE_LUA, RELEASE_LUA] {
            assert!(lua.contains("string.len(held) == 45"));
            assert!(lua.contains(r"string.sub(held, 1, 5) == 'SFI1\0'"));
            assert!(lua.contains("string.sub(held, 38, 45)"));
        }
    }

    #[test]
    fn expiries_stay_in_range() {
        assert!(matches!(millis(Duration::ZERO), Value::Integer(1)));
        assert!(matches!(
            millis(Duration::from_millis(1500)),
            Value::Integer(1500)
        ));
        assert!(matches!(millis(Duration::MAX), Value::Integer(n) if n == 1 << 44));
    }

    #[test]
    fn odd_answers_are_errors_not_panics() {
        for value in [
            Value::Boolean(true),
            Value::Double(1.0),
            Value::Array(vec![]),
            Value::Queued,
        ] {
            assert!(matches!(
                bytes_of(value.clone()),
                Err(StoreError::Unavailable(_))
            ));
            assert!(matches!(flag_of(&value), Err(StoreError::Unavailable(_))));
        }
        assert!(matches!(
            flag_of(&Value::Integer(2)),
            Err(StoreError::Unavailable(_))
        ));
        assert!(matches!(
            flag_of(&Value::Null),
            Err(StoreError::Unavailable(_))
        ));
        assert!(matches!(decode(b"SFI1"), Err(StoreError::Corrupt(_))));
    }
}
