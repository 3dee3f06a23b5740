//! Nothing: the compile-time tests of `#[derive(Task)]` are in `tests/ui.rs`, their cases in
//! `ui/pass` (must build) and `ui/fail` (must fail with the recorded message).
