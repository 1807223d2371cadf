//! Test-only crate: see `tests/tokio.rs`. It exists so that tokio stays out
//! of the `ovl` crate's dev-dependencies (whose tests build with Rust 1.63).
