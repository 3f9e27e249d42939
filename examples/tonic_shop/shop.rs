//! The Shop server: `GetProduct` read through a two-tier cache in front of a slow database,
//! `PlaceOrder` made idempotent by the `idempotency-key` metadata, over memory or Redis.
//!
//! Shared by the `tonic_server` example, the `tonic_client` example (which runs one in its own
//! process unless given a server) and the tests.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use steadfast::cache::{self, Admit, Cached, Source, Stale, TieredCache};
use steadfast::idempotency::http::IdempotencyLayer;
use steadfast::idempotency::store::{MemoryStore, Store};
use steadfast::idempotency::Idempotency;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::metadata::MetadataValue;
use tonic::transport::Server;
use tonic::{Request, Response, Status};

use crate::proto::{
    GetProductRequest, Order, PlaceOrderRequest, Product, Shop, ShopServer, CACHE_STATUS, CUSTOMER,
    IDEMPOTENCY_KEY,
};

/// The environment variable naming a Redis server, as `redis://host:port`.
pub(crate) const REDIS_ENV: &str = "STEADFAST_REDIS_URL";

/// How long the database takes to answer a query.
pub(crate) const DATABASE_DELAY: Duration = Duration::from_millis(200);

// ---------------------------------------------------------------------------------------------
// What the server stands in front of
// ---------------------------------------------------------------------------------------------

/// The catalogue's database: slow, counting its queries, and able to go down on demand.
#[derive(Debug)]
pub(crate) struct Database {
    products: HashMap<u64, Product>,
    delay: Duration,
    queries: AtomicU64,
    down: AtomicBool,
}

impl Database {
    /// A database of three products, answering each query after `delay`.
    pub(crate) fn new(delay: Duration) -> Self {
        let products = [(1, "Teapot", 1_200), (2, "Kettle", 3_450), (3, "Mug", 650)]
            .into_iter()
            .map(|(id, name, price_cents)| {
                let product = Product {
                    id,
                    name: name.to_owned(),
                    price_cents,
                };
                (id, product)
            })
            .collect();
        Self {
            products,
            delay,
            queries: AtomicU64::new(0),
            down: AtomicBool::new(false),
        }
    }

    /// The product `id`, or `None` if there is no such product.
    pub(crate) async fn product(&self, id: u64) -> Result<Option<Product>, io::Error> {
        let query = self.queries.fetch_add(1, Ordering::Relaxed) + 1;
        println!("  server | database query #{query}: product {id}");
        tokio::time::sleep(self.delay).await;
        if self.down.load(Ordering::Relaxed) {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                "the database is down",
            ));
        }
        Ok(self.products.get(&id).cloned())
    }

    /// How many queries the database has had.
    pub(crate) fn queries(&self) -> u64 {
        self.queries.load(Ordering::Relaxed)
    }

    /// Takes the database down, or brings it back.
    pub(crate) fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::Relaxed);
    }
}

/// The payment processor: every charge is real, so each one is counted.
#[derive(Debug, Default)]
pub(crate) struct Payments {
    charges: AtomicU64,
}

impl Payments {
    /// Charges `amount_cents`; answers the charge's number.
    fn charge(&self, amount_cents: u64) -> u64 {
        let number = self.charges.fetch_add(1, Ordering::Relaxed) + 1;
        println!("  server | CHARGED #{number}: {amount_cents} cents");
        number
    }

    /// How many charges were made.
    pub(crate) fn charges(&self) -> u64 {
        self.charges.load(Ordering::Relaxed)
    }
}

// ---------------------------------------------------------------------------------------------
// The service
// ---------------------------------------------------------------------------------------------

/// The catalogue cache's policy. Products change rarely: fresh for a minute, and for an hour
/// after that the last known product answers if the database fails (stale-if-error). A product
/// that does not exist is remembered for ten seconds, so lookups of it do not each reach the
/// database.
pub(crate) fn products_cache() -> cache::Builder<u64, Option<Product>> {
    TieredCache::builder("shop-products")
        .ttl(Duration::from_secs(60))
        .stale_if_error(Duration::from_secs(3_600))
        .negative_ttl(Duration::from_secs(10))
        .admit(Admit::option)
        // A database that hangs is a database that failed: the stale value, or UNAVAILABLE.
        .load_timeout(Duration::from_secs(2))
}

/// The Shop service.
#[derive(Clone, Debug)]
pub(crate) struct ShopService {
    products: TieredCache<u64, Option<Product>>,
    database: Arc<Database>,
    payments: Arc<Payments>,
}

impl ShopService {
    /// A shop whose catalogue reads go through `products`.
    pub(crate) fn new(
        products: TieredCache<u64, Option<Product>>,
        database: Arc<Database>,
        payments: Arc<Payments>,
    ) -> Self {
        Self {
            products,
            database,
            payments,
        }
    }

    /// A shop with a fresh database and payment processor, its cache on `stores`.
    pub(crate) fn on(stores: &Stores) -> Result<Self, SetupError> {
        Ok(Self::new(
            stores.cache(products_cache())?,
            Arc::new(Database::new(DATABASE_DELAY)),
            Arc::default(),
        ))
    }

    /// The database behind the catalogue.
    pub(crate) fn database(&self) -> &Database {
        &self.database
    }

    /// The payment processor.
    pub(crate) fn payments(&self) -> &Payments {
        &self.payments
    }

    /// The product `id` through the cache, with where it came from.
    async fn product(&self, id: u64) -> Result<Cached<Option<Product>>, Status> {
        let database = Arc::clone(&self.database);
        self.products
            .get_with(id, move || async move { database.product(id).await })
            .await
            // Nothing cached, not even stale: the caller may try again later. The message names
            // no internals; the cause is the server's to log.
            .map_err(|error| {
                println!("  server | product {id}: {error}");
                Status::unavailable("the catalogue is unavailable")
            })
    }
}

impl Shop for ShopService {
    async fn get_product(
        &self,
        request: Request<GetProductRequest>,
    ) -> Result<Response<Product>, Status> {
        let id = request.into_inner().id;
        let answer = self.product(id).await?;
        // Say where the answer came from, and above all when it is stale: the caller may want
        // to show it differently.
        let cache_status = match (answer.status(), answer.source()) {
            (cache::Status::Fresh, Source::Loader) => "miss",
            (cache::Status::Fresh, Source::L1 | Source::L2) => "hit",
            (cache::Status::Stale(Stale::Revalidating), _) => "stale; revalidating",
            (cache::Status::Stale(Stale::LoadFailed(_)), _) => "stale; the database failed",
        };
        let product = answer
            .into_inner()
            .ok_or_else(|| Status::not_found(format!("no product {id}")))?;
        let mut response = Response::new(product);
        response
            .metadata_mut()
            .insert(CACHE_STATUS, MetadataValue::from_static(cache_status));
        Ok(response)
    }

    async fn place_order(
        &self,
        request: Request<PlaceOrderRequest>,
    ) -> Result<Response<Order>, Status> {
        // The idempotency layer has answered every retry before this runs; a call without a
        // key would charge with no protection at all, so it is refused.
        if request.metadata().get(IDEMPOTENCY_KEY).is_none() {
            return Err(Status::invalid_argument(
                "PlaceOrder needs an idempotency-key, so that a retry never charges twice",
            ));
        }
        let PlaceOrderRequest {
            product_id,
            quantity,
        } = request.into_inner();
        if quantity == 0 {
            return Err(Status::invalid_argument("the quantity must be at least 1"));
        }
        // The price is read through the cache too: a stale price may be charged while the
        // database is down, a choice this shop makes (another would refuse the order).
        let product = self
            .product(product_id)
            .await?
            .into_inner()
            .ok_or_else(|| Status::not_found(format!("no product {product_id}")))?;
        let amount_cents = product
            .price_cents
            .checked_mul(u64::from(quantity))
            .ok_or_else(|| Status::invalid_argument("the amount is too large"))?;
        let order_id = self.payments.charge(amount_cents);
        Ok(Response::new(Order {
            order_id,
            product_id,
            quantity,
            amount_cents,
        }))
    }
}

// ---------------------------------------------------------------------------------------------
// Stores: memory, or Redis shared by every instance
// ---------------------------------------------------------------------------------------------

/// Where idempotency records and cached products live.
#[derive(Clone, Debug)]
pub(crate) enum Stores {
    /// In this process: enough for one instance.
    Memory(Idempotency<MemoryStore>),
    /// In Redis: a retry that reaches another instance is still answered from the record, and
    /// a product one instance loaded is an L2 hit for the others.
    #[cfg(feature = "redis")]
    Redis {
        /// The idempotency records.
        idempotency: Idempotency<steadfast::idempotency::store::RedisStore>,
        /// The cache's shared tier.
        tier: steadfast::cache::remote::RedisTier,
    },
}

impl Stores {
    /// Memory, or the Redis server at `redis_url`.
    ///
    /// # Errors
    ///
    /// When Redis cannot be reached, or this build has no Redis support.
    pub(crate) async fn open(redis_url: Option<&str>) -> Result<Self, SetupError> {
        match redis_url {
            None => Ok(Self::Memory(Idempotency::in_memory())),
            #[cfg(feature = "redis")]
            Some(url) => redis::open(url).await,
            #[cfg(not(feature = "redis"))]
            Some(_) => Err(SetupError::NoRedisFeature),
        }
    }

    /// What to print about the stores.
    pub(crate) fn describe(&self) -> &'static str {
        match self {
            Self::Memory(_) => "in memory",
            #[cfg(feature = "redis")]
            Self::Redis { .. } => "in Redis",
        }
    }

    /// A cache built from `builder`, with the Redis tier if the stores are in Redis.
    ///
    /// # Errors
    ///
    /// When the cache's settings are invalid.
    pub(crate) fn cache(
        &self,
        builder: cache::Builder<u64, Option<Product>>,
    ) -> Result<TieredCache<u64, Option<Product>>, SetupError> {
        let builder = match self {
            Self::Memory(_) => builder,
            #[cfg(feature = "redis")]
            Self::Redis { tier, .. } => builder.remote_with_codec(tier.clone(), redis::Protobuf),
        };
        builder.build().map_err(SetupError::Cache)
    }
}

/// The Redis URL to use: the `--redis` flag's, else the environment's.
pub(crate) fn redis_url(flag: Option<String>) -> Option<String> {
    flag.or_else(|| std::env::var(REDIS_ENV).ok().filter(|url| !url.is_empty()))
}

#[cfg(feature = "redis")]
mod redis {
    use std::time::Duration;

    use prost::Message as _;
    use steadfast::cache::codec::{Codec, CodecError};
    use steadfast::cache::fred::clients::SubscriberClient;
    use steadfast::cache::fred::prelude::{Builder, Client, ClientLike, Config, ReconnectPolicy};
    use steadfast::cache::remote::RedisTier;
    use steadfast::idempotency::store::RedisStore;
    use steadfast::idempotency::Idempotency;

    use super::{SetupError, Stores};
    use crate::proto::Product;

    /// Connects both clients and builds the stores on them.
    pub(super) async fn open(url: &str) -> Result<Stores, SetupError> {
        let failed = |error| SetupError::Redis(url.to_owned(), error);
        let (client, subscriber) = connect(url).await.map_err(failed)?;
        let tier = RedisTier::with_notices(client.clone(), subscriber)
            .await
            .map_err(failed)?;
        Ok(Stores::Redis {
            idempotency: Idempotency::new(RedisStore::new(client)),
            tier,
        })
    }

    /// A client for commands and one for the cache's invalidation notices. A Redis that does
    /// not answer fails a command within half a second (the idempotency layer then answers
    /// UNAVAILABLE, the cache goes on without its shared tier); both clients reconnect by
    /// themselves every half second.
    async fn connect(
        url: &str,
    ) -> Result<(Client, SubscriberClient), steadfast::cache::fred::error::Error> {
        let config = Config::from_url(url)?;
        let policy = ReconnectPolicy::new_constant(0, 500);
        let client = Builder::from_config(config.clone())
            .with_performance_config(|performance| {
                performance.default_command_timeout = Duration::from_millis(500);
            })
            .with_connection_config(|connection| {
                connection.connection_timeout = Duration::from_secs(1);
                // A command resent after its connection dropped may have run: an error is
                // clearer than a claim that answers as if someone else had made it.
                connection.max_command_attempts = 1;
            })
            .set_policy(policy.clone())
            .build()?;
        let subscriber = Builder::from_config(config)
            .with_connection_config(|connection| {
                connection.connection_timeout = Duration::from_secs(1);
            })
            .set_policy(policy)
            .build_subscriber_client()?;
        // The first connection fails at once when Redis is not there (`fail_fast`, the
        // default), rather than retrying behind the caller's back.
        client.init().await?;
        subscriber.init().await?;
        Ok((client, subscriber))
    }

    /// Products in Redis as protobuf, the service's own wire format. `None` ("no such product")
    /// is the empty payload, which no product encodes to (a product has an id).
    pub(super) struct Protobuf;

    impl Codec<Option<Product>> for Protobuf {
        fn encode(&self, value: &Option<Product>, out: &mut Vec<u8>) -> Result<(), CodecError> {
            match value {
                Some(product) => product.encode(out).map_err(CodecError::new),
                None => Ok(()),
            }
        }

        fn decode(&self, bytes: &[u8]) -> Result<Option<Product>, CodecError> {
            if bytes.is_empty() {
                return Ok(None);
            }
            Product::decode(bytes).map(Some).map_err(CodecError::new)
        }
    }
}

/// Why the server could not be set up.
#[derive(Debug)]
pub(crate) enum SetupError {
    /// A Redis URL was given, but this build has no Redis support.
    #[cfg(not(feature = "redis"))]
    NoRedisFeature,
    /// Redis could not be reached at the URL.
    #[cfg(feature = "redis")]
    Redis(String, steadfast::cache::fred::error::Error),
    /// The cache's settings were refused.
    Cache(cache::BuildError),
    /// The address could not be listened on.
    Listen(SocketAddr, io::Error),
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            #[cfg(not(feature = "redis"))]
            Self::NoRedisFeature => write!(
                f,
                "a Redis URL was given (--redis or {REDIS_ENV}), but this build has no Redis \
                 support: run it again with `--features redis`"
            ),
            #[cfg(feature = "redis")]
            Self::Redis(url, error) => write!(f, "could not connect to Redis at {url}: {error}"),
            Self::Cache(error) => write!(f, "the product cache: {error}"),
            Self::Listen(addr, error) => write!(f, "could not listen on {addr}: {error}"),
        }
    }
}

impl std::error::Error for SetupError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            #[cfg(not(feature = "redis"))]
            Self::NoRedisFeature => None,
            #[cfg(feature = "redis")]
            Self::Redis(_, error) => Some(error),
            Self::Cache(error) => Some(error),
            Self::Listen(_, error) => Some(error),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Serving
// ---------------------------------------------------------------------------------------------

/// The idempotency layer: a `PlaceOrder` with an `idempotency-key` runs once per key and
/// customer, and its retries are answered from the record, with `idempotent-replayed: true`.
/// Calls without a key pass through (every gRPC call is a POST, `GetProduct` included).
fn idempotency<S: Store>(engine: Idempotency<S>) -> IdempotencyLayer<S> {
    IdempotencyLayer::new(engine).scope(|head: &http::request::Parts| {
        let customer = head.headers.get(CUSTOMER)?.to_str().ok()?;
        (!customer.is_empty()).then(|| customer.to_owned())
    })
}

/// Serves `shop` on `listener` until `shutdown` completes.
///
/// # Errors
///
/// When the server fails.
pub(crate) async fn serve(
    listener: TcpListener,
    shop: ShopService,
    stores: Stores,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    match stores {
        Stores::Memory(engine) => serve_with(listener, shop, engine, shutdown).await,
        #[cfg(feature = "redis")]
        Stores::Redis { idempotency, .. } => {
            serve_with(listener, shop, idempotency, shutdown).await
        }
    }
}

async fn serve_with<S: Store>(
    listener: TcpListener,
    shop: ShopService,
    engine: Idempotency<S>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    Server::builder()
        .layer(idempotency(engine))
        .add_service(ShopServer::new(shop))
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
        .await
}

/// A Shop server running on a task of this process until stopped.
#[derive(Debug)]
pub(crate) struct Running {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), tonic::transport::Error>>,
}

impl Running {
    /// Starts serving `shop` on `addr` (port 0 for a free one).
    ///
    /// # Errors
    ///
    /// When `addr` cannot be listened on.
    pub(crate) async fn start(
        addr: SocketAddr,
        shop: ShopService,
        stores: Stores,
    ) -> Result<Self, SetupError> {
        let listen = |error| SetupError::Listen(addr, error);
        let listener = TcpListener::bind(addr).await.map_err(listen)?;
        let addr = listener.local_addr().map_err(listen)?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, shop, stores, async {
            let _ = stopped.await;
        }));
        Ok(Self { addr, stop, task })
    }

    /// The address it listens on.
    pub(crate) const fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops listening, finishes the calls under way, and ends.
    ///
    /// # Errors
    ///
    /// When the server failed.
    pub(crate) async fn stop(self) -> Result<(), StopError> {
        let _ = self.stop.send(());
        match self.task.await {
            Ok(served) => served.map_err(StopError::Failed),
            Err(_) => Err(StopError::Panicked),
        }
    }
}

/// How a stopped server had failed.
#[derive(Debug)]
pub(crate) enum StopError {
    /// The server failed.
    Failed(tonic::transport::Error),
    /// The server's task panicked.
    Panicked,
}

impl fmt::Display for StopError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Failed(error) => write!(f, "the server failed: {error}"),
            Self::Panicked => f.write_str("the server's task panicked"),
        }
    }
}

impl std::error::Error for StopError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Failed(error) => Some(error),
            Self::Panicked => None,
        }
    }
}
