//! A raw slice decoded as alignedslice decodes it: an 8-bit grayscale image or an error, never a
//! panic, and never much more memory than `MAX_DECODED_BYTES`, whatever size the header claims.

#![no_main]

use emwrite::ErrorKind;
use emwrite::slice_image::{MAX_DECODED_BYTES, decode_gray};
use emwrite_fuzz::{heap_peak_of, object};
use libfuzzer_sys::fuzz_target;

/// The limit is on the decoded pixels; decoders also keep a compressed strip, a row or a
/// Huffman table, which this allows for.
const HEAP_BUDGET: usize = MAX_DECODED_BYTES as usize + (64 << 20);

fuzz_target!(|bytes: &[u8]| {
    let what = object();
    let (decoded, peak) = heap_peak_of(|| decode_gray(bytes, &what));
    assert!(
        peak <= HEAP_BUDGET,
        "decoding {} bytes held {peak} bytes at once, over {HEAP_BUDGET}",
        bytes.len()
    );
    match decoded {
        Ok(image) => assert_eq!(
            image.pixels.len() as u64,
            u64::from(image.width) * u64::from(image.height)
        ),
        Err(e) => assert!(
            matches!(e.kind(), ErrorKind::UnreadableInput | ErrorKind::TooLarge),
            "{:?} from decoding: {e}",
            e.kind()
        ),
    }
});
