//! Everything the Spin build does differently: settings from Spin variables, and GCS tokens it
//! mints itself because Spin cannot add credentials to a guest's requests (docs/design.md §2).
//!
//! The portable build has none of this and imports nothing but `wasi:*@0.2`; the Spin build
//! adds `fermyon:spin/variables`, which only Spin provides (docs/design.md §8).

pub mod jwt;
pub mod oauth;
#[cfg(target_family = "wasm")]
pub mod settings;
