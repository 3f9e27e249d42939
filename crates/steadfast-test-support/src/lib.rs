//! Test support shared by the Steadfast crates' integration tests: real `redis-server`
//! processes (standalone or a three-node cluster) spawned on free loopback ports, never the
//! shared server on 6379.

pub mod redis;
