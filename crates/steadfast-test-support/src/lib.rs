//! Test support shared by the Steadfast crates' integration tests: real `redis-server`
//! processes (standalone or a three-node cluster) spawned on free loopback ports, never the
//! shared server on 6379.

// Test support: a result left unused is a test bug the test itself shows.
#![allow(clippy::must_use_candidate)]

pub mod redis;
