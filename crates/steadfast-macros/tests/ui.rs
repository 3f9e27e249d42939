//! Compile errors of `#[idempotent]` point at the attribute's mistake.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/ui/pass.rs");
    cases.compile_fail("tests/ui/not_async.rs");
    cases.compile_fail("tests/ui/bad_ttl.rs");
    cases.compile_fail("tests/ui/unknown_argument.rs");
    cases.compile_fail("tests/ui/method.rs");
}
