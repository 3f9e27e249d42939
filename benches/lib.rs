//! Nothing to import: this package holds the Steadfast benchmarks (`cargo bench -p
//! steadfast-benches`); see `BENCHMARKS.md` for what each measures and how to run it.
