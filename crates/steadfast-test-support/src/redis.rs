//! Real Redis servers for the tests: spawned on free loopback ports, in their own directories,
//! killed on drop. Never the shared server on 6379.
//!
//! `redis-server` and `redis-cli` must be installed (scripts/test installs them): without them
//! the tests fail, they do not skip.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long a server may take to answer after it starts (an AOF replay included).
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// A `fred` client builder with short timeouts, one attempt per command and a reconnection
/// every 100 ms without end: a dead server fails calls within `timeout`, and the client comes
/// back by itself once the server does.
#[cfg(feature = "fred")]
pub fn client_builder(
    config: fred::types::config::Config,
    timeout: Duration,
) -> fred::types::Builder {
    let mut builder = fred::types::Builder::from_config(config);
    builder
        .with_performance_config(|performance| {
            performance.default_command_timeout = timeout;
        })
        .with_connection_config(|connection| {
            connection.connection_timeout = timeout;
            connection.internal_command_timeout = timeout;
            connection.max_command_attempts = 1;
        })
        .set_policy(fred::types::config::ReconnectPolicy::new_constant(0, 100));
    builder
}

/// A directory of its own under the system's temporary directory, removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates a fresh directory whose name starts with `label`.
    pub fn new(label: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.subsec_nanos());
        let path = std::env::temp_dir().join(format!(
            "steadfast-{label}-{}-{}-{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).expect("create a temporary directory");
        Self(path)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A port nobody listens on now (and, with `bus`, whose cluster bus port, 10000 above, is
/// free too). Another process may still take it before the server does: callers retry.
fn free_port(bus: bool) -> u16 {
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = listener.local_addr().expect("a bound address").port();
        if !bus {
            return port;
        }
        if port <= u16::MAX - 10_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

fn spawn(program: &str, args: &[String]) -> Child {
    match Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(child) => child,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => panic!(
            "`{program}` is not installed: the Redis store tests need a real Redis server \
             (scripts/test installs it; or `apt-get install redis-server`)"
        ),
        Err(error) => panic!("could not start `{program}`: {error}"),
    }
}

/// Sends one inline command and reads the first line of the answer.
fn ask(port: u16, command: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(1)))?;
    stream.set_write_timeout(Some(Duration::from_secs(1)))?;
    stream.write_all(format!("{command}\r\n").as_bytes())?;
    let mut answer = Vec::new();
    let mut byte = [0u8; 1];
    while !answer.ends_with(b"\r\n") {
        if stream.read(&mut byte)? == 0 {
            break;
        }
        answer.push(byte[0]);
    }
    Ok(String::from_utf8_lossy(&answer).trim_end().to_owned())
}

/// Runs `redis-cli -p port args...` and answers its output.
pub fn cli(port: u16, args: &[&str]) -> String {
    let output = match Command::new("redis-cli")
        .arg("-p")
        .arg(port.to_string())
        .args(args)
        .stdin(Stdio::null())
        .output()
    {
        Ok(output) => output,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => panic!(
            "`redis-cli` is not installed: the Redis store tests need it \
             (scripts/test installs redis-server, which brings it)"
        ),
        Err(error) => panic!("could not run `redis-cli`: {error}"),
    };
    assert!(
        output.status.success(),
        "redis-cli {args:?} failed: {output:?}"
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Waits until the server on `port` answers PING with PONG (not LOADING, not refused).
/// `false` if the process exited first or the time ran out.
fn wait_for_pong(child: &mut Child, port: u16) -> bool {
    let deadline = Instant::now() + START_TIMEOUT;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if ask(port, "PING").is_ok_and(|answer| answer == "+PONG") {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// One `redis-server` process: its port, its directory, its arguments (to start it again).
#[derive(Debug)]
struct Process {
    port: u16,
    args: Vec<String>,
    child: Option<Child>,
}

impl Process {
    /// Starts a server with `extra` arguments in `dir`, on a free port (retrying if another
    /// process took the port first).
    fn start(dir: &Path, extra: &[&str], bus: bool) -> Self {
        for _ in 0..5 {
            let port = free_port(bus);
            let mut args: Vec<String> = [
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--dir",
                dir.to_str().expect("a UTF-8 temporary directory"),
            ]
            .iter()
            .map(|arg| (*arg).to_owned())
            .collect();
            args.extend(extra.iter().map(|arg| (*arg).to_owned()));
            let mut process = Self {
                port,
                args,
                child: None,
            };
            if process.launch() {
                return process;
            }
        }
        panic!("redis-server did not start (five free ports tried)");
    }

    fn launch(&mut self) -> bool {
        let mut child = spawn("redis-server", &self.args);
        let up = wait_for_pong(&mut child, self.port);
        if !up {
            let _ = child.kill();
            let _ = child.wait();
            return false;
        }
        self.child = Some(child);
        true
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill(); // SIGKILL: no shutdown, no last write.
            let _ = child.wait();
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A standalone server with `appendonly yes` and `appendfsync always`: an acknowledged write
/// is on disk before its answer.
#[derive(Debug)]
pub struct RedisServer {
    process: Process,
    // Dropped after the process.
    _dir: TempDir,
}

impl RedisServer {
    /// Starts a server and waits until it answers.
    pub fn start() -> Self {
        let dir = TempDir::new("redis");
        let process = Process::start(
            dir.path(),
            &["--appendonly", "yes", "--appendfsync", "always"],
            false,
        );
        Self { process, _dir: dir }
    }

    /// The loopback port the server listens on.
    pub fn port(&self) -> u16 {
        self.process.port
    }

    /// Makes the server hold every client's commands for `millis` (`CLIENT PAUSE ... ALL`):
    /// a server that is slow rather than down.
    pub fn pause(&self, millis: u64) {
        self.cli(&["client", "pause", &millis.to_string(), "all"]);
    }

    /// `redis://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port())
    }

    /// A `fred` config for this server.
    #[cfg(feature = "fred")]
    pub fn config(&self) -> fred::types::config::Config {
        fred::types::config::Config::from_url(&self.url()).expect("a Redis URL")
    }

    /// Kills the server (SIGKILL).
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Kills the server if it runs, then starts it again on the same port and directory, so it
    /// replays its append-only file, and waits until it answers.
    pub fn restart(&mut self) {
        self.process.kill();
        let deadline = Instant::now() + START_TIMEOUT;
        // The port is ours until someone else takes it; the old socket may linger briefly.
        while !self.process.launch() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not restart on its port"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `redis-cli` against this server.
    pub fn cli(&self, args: &[&str]) -> String {
        cli(self.port(), args)
    }

    /// The calls of `command` so far, from `INFO commandstats` (`0` if never called).
    pub fn calls(&self, command: &str) -> u64 {
        command_calls(&self.cli(&["info", "commandstats"]), command)
    }

    /// The calls of every command so far but `INFO` (which this asks with), from
    /// `INFO commandstats`.
    pub fn total_calls(&self) -> u64 {
        self.cli(&["info", "commandstats"])
            .lines()
            .filter_map(|line| line.trim().strip_prefix("cmdstat_"))
            .filter(|line| !line.starts_with("info:"))
            .filter_map(|line| {
                let fields = line.split_once(':')?.1;
                fields
                    .split(',')
                    .find_map(|field| field.strip_prefix("calls="))
                    .and_then(|calls| calls.parse::<u64>().ok())
            })
            .sum()
    }
}

/// `calls=` of `cmdstat_<command>` in an `INFO commandstats` answer.
pub fn command_calls(info: &str, command: &str) -> u64 {
    let prefix = format!("cmdstat_{}:", command.to_ascii_lowercase());
    info.lines()
        .find_map(|line| line.trim().strip_prefix(prefix.as_str()))
        .and_then(|fields| {
            fields
                .split(',')
                .find_map(|field| field.strip_prefix("calls="))
                .and_then(|calls| calls.parse().ok())
        })
        .unwrap_or(0)
}

/// A three-node Redis Cluster, primaries only, every slot assigned.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<Process>,
    dirs: Vec<TempDir>,
}

impl RedisCluster {
    /// Starts three nodes, makes them one cluster and waits until every node says
    /// `cluster_state:ok`.
    pub fn start() -> Self {
        let mut nodes = Vec::new();
        let mut dirs = Vec::new();
        for _ in 0..3 {
            let dir = TempDir::new("redis-cluster");
            nodes.push(Process::start(
                dir.path(),
                &[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "5000",
                    "--appendonly",
                    "no",
                ],
                true,
            ));
            dirs.push(dir);
        }
        let cluster = Self { nodes, dirs };
        let addresses: Vec<String> = cluster
            .ports()
            .iter()
            .map(|port| format!("127.0.0.1:{port}"))
            .collect();
        let mut args = vec!["--cluster", "create"];
        args.extend(addresses.iter().map(String::as_str));
        args.extend(["--cluster-replicas", "0", "--cluster-yes"]);
        cli(cluster.ports()[0], &args);
        let deadline = Instant::now() + Duration::from_secs(30);
        for port in cluster.ports() {
            while !cli(port, &["cluster", "info"]).contains("cluster_state:ok") {
                assert!(
                    Instant::now() < deadline,
                    "the cluster did not reach cluster_state:ok"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        cluster
    }

    /// A `fred` config for this cluster.
    #[cfg(feature = "fred")]
    pub fn config(&self) -> fred::types::config::Config {
        let hosts: Vec<(&str, u16)> = self
            .ports()
            .into_iter()
            .map(|port| ("127.0.0.1", port))
            .collect();
        fred::types::config::Config {
            server: fred::types::config::ServerConfig::new_clustered(hosts),
            ..fred::types::config::Config::default()
        }
    }

    /// The nodes' loopback ports.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|node| node.port).collect()
    }

    /// The calls of `command` so far, summed over the nodes.
    pub fn calls(&self, command: &str) -> u64 {
        self.ports()
            .into_iter()
            .map(|port| command_calls(&cli(port, &["info", "commandstats"]), command))
            .sum()
    }

    /// Keys held by each node (`DBSIZE`), in port order.
    pub fn key_counts(&self) -> Vec<u64> {
        self.ports()
            .into_iter()
            .map(|port| cli(port, &["dbsize"]).trim().parse().unwrap_or(0))
            .collect()
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        // The processes first, then their directories.
        self.nodes.clear();
        self.dirs.clear();
    }
}
