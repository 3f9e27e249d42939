//! Compile errors of `#[idempotent]` and `#[cached]` point at the attribute's mistake.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/ui/pass.rs");
    cases.compile_fail("tests/ui/not_async.rs");
    cases.compile_fail("tests/ui/bad_ttl.rs");
    cases.compile_fail("tests/ui/unknown_argument.rs");
    cases.compile_fail("tests/ui/method.rs");
    cases.pass("tests/ui/cached_pass.rs");
    cases.compile_fail("tests/ui/cached_bad_ttl.rs");
    cases.compile_fail("tests/ui/cached_reference.rs");
    cases.compile_fail("tests/ui/cached_conflict.rs");
    cases.compile_fail("tests/ui/cached_arguments.rs");
}
