//! Bindings generated from `wit/` for the typed endpoint exports, kept to themselves.
#![expect(
    unsafe_code,
    reason = "wit-bindgen generated code exports C ABI functions"
)]

wit_bindgen::generate!({
    world: "endpoints",
    path: "wit",
});

use super::exports::Component;
export!(Component);
