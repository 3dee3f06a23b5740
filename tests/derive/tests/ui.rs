//! Compile-time tests: `#[derive(Task)]` expansions and handler shapes (structs, `?` on boxed and
//! anyhow errors, `.handle` inference) that must build, and derive mistakes that must
//! be reported at the right token.

#[test]
fn derive_task_ui() {
    let t = trybuild::TestCases::new();
    t.pass("ui/pass/*.rs");
    t.compile_fail("ui/fail/*.rs");
}
