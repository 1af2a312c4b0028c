//! The three endpoints' request parsers on the same bytes: each returns a request that passes
//! its own `validate` or a client error naming the field, and never panics.

#![no_main]

use emwrite::ErrorKind;
use emwrite::request::{AlignedSliceRequest, NgMetaRequest, NgShardRequest};
use libfuzzer_sys::fuzz_target;

/// A body is the client's fault or it is fine: no server-side kind may come out of parsing.
fn check<T>(parsed: emwrite::Result<T>, validate: impl FnOnce(&T) -> emwrite::Result<()>) {
    match parsed {
        Ok(request) => {
            if let Err(e) = validate(&request) {
                panic!("from_json accepted a request that validate rejects: {e}");
            }
        }
        Err(e) => assert!(
            matches!(e.kind(), ErrorKind::BadRequest | ErrorKind::TooLarge),
            "{:?} from parsing: {e}",
            e.kind()
        ),
    }
}

fuzz_target!(|body: &[u8]| {
    check(
        AlignedSliceRequest::from_json(body),
        AlignedSliceRequest::validate,
    );
    check(NgMetaRequest::from_json(body), NgMetaRequest::validate);
    check(NgShardRequest::from_json(body), NgShardRequest::validate);
});
