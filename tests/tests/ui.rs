//! Compile-time tests of `#[derive(Task)]`: expansions that must build, and mistakes that must
//! be reported at the right token.

#[test]
fn derive_task_ui() {
    let t = trybuild::TestCases::new();
    t.pass("ui/pass/*.rs");
    t.compile_fail("ui/fail/*.rs");
}
