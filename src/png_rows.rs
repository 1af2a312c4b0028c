//! Encoding an 8-bit grey PNG band of rows after band of rows, for images not held whole.
//!
//! [`crate::tilepack::encode_png`] encodes a whole image through the `image` crate with
//! `CompressionType::Fast` and `FilterType::Adaptive`, which `image` 0.25 hands to the `png`
//! crate as `png::Compression::Fast` (fdeflate's PNG-tuned DEFLATE) and `png::Filter::Adaptive`
//! (per row, the filter with the smallest sum of absolute differences). [`PngRowEncoder`] uses
//! the same DEFLATE on `png`'s streaming writer but one filter for every row, `Avg`: the aligned
//! PNG's bytes are emwrite's choice (only its pixels must be Pillow's), and on EM-like slices
//! trying all five filters per row bought nothing. Measured in wasm on the aligned 8192² slice
//! of `make_stack`: Adaptive 378 ms and 54.4 MB, Avg 238 ms and 54.4 MB, Paeth 250 ms and 56.2
//! MB, Up 239 ms and 56.9 MB, no filter 100.5 MB. The pixels are the same as the whole-image
//! path's; the bytes differ, and also because that path falls back to stored blocks when DEFLATE
//! does not pay, which a stream cannot know in advance.

use crate::{Error, Result};
use std::cell::RefCell;
use std::io::Write;
use std::rc::Rc;

/// Bytes of compressed data per `IDAT` chunk: large enough that chunk framing (12 bytes each)
/// costs nothing measurable, small enough to leave the encoder's hands at each band.
const IDAT_BYTES: usize = 1 << 20;

/// The encoded bytes, shared between the encoder that writes them and the caller that takes
/// them after each band: `png::StreamWriter` owns its output and offers no way back to it.
#[derive(Clone, Default)]
struct SharedBuffer(Rc<RefCell<Vec<u8>>>);

impl Write for SharedBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A `width × height` 8-bit grey PNG being encoded band by band, top to bottom.
///
/// ```
/// use emwrite::png_rows::PngRowEncoder;
/// let mut encoder = PngRowEncoder::new(3, 2).unwrap();
/// encoder.write_rows(&[1, 2, 3]).unwrap();
/// let mut png = encoder.take_encoded();
/// encoder.write_rows(&[4, 5, 6]).unwrap();
/// png.extend(encoder.finish().unwrap());
/// let image = image::load_from_memory(&png).unwrap().into_luma8();
/// assert_eq!(image.into_raw(), [1, 2, 3, 4, 5, 6]);
/// ```
pub struct PngRowEncoder {
    stream: png::StreamWriter<'static, SharedBuffer>,
    encoded: SharedBuffer,
    width: u32,
    height: u32,
}

impl PngRowEncoder {
    /// Starts the PNG: its signature and header are the first encoded bytes.
    pub fn new(width: u32, height: u32) -> Result<Self> {
        let encoded = SharedBuffer::default();
        let mut encoder = png::Encoder::new(encoded.clone(), width, height);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(png::BitDepth::Eight);
        // `set_compression` also picks a filter (Adaptive); ours is set after it (module docs).
        encoder.set_compression(png::Compression::Fast);
        encoder.set_filter(png::Filter::Avg);
        let stream = encoder
            .write_header()
            .and_then(|writer| writer.into_stream_writer_with_size(IDAT_BYTES))
            .map_err(|e| encoding_error(width, height, e))?;
        Ok(Self {
            stream,
            encoded,
            width,
            height,
        })
    }

    /// Encodes the next whole rows, `width` bytes each.
    pub fn write_rows(&mut self, rows: &[u8]) -> Result<()> {
        let (width, height) = (self.width, self.height);
        self.stream
            .write_all(rows)
            .map_err(|e| encoding_error(width, height, e))
    }

    /// The bytes encoded since the last call, to be written out; the encoder keeps a little
    /// back until its buffers fill or it finishes.
    pub fn take_encoded(&mut self) -> Vec<u8> {
        std::mem::take(&mut *self.encoded.0.borrow_mut())
    }

    /// Ends the PNG once every row is written and returns its last bytes.
    pub fn finish(self) -> Result<Vec<u8>> {
        let (width, height) = (self.width, self.height);
        // Finishing flushes the compressor and the last IDAT chunk; dropping the writer it owns
        // then writes IEND into the shared buffer, which cannot fail.
        self.stream
            .finish()
            .map_err(|e| encoding_error(width, height, e))?;
        Ok(self.encoded.0.take())
    }
}

fn encoding_error(width: u32, height: u32, e: impl std::fmt::Display) -> Error {
    Error::internal(format!("encoding a {width}×{height} png: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_encode_the_same_pixels_as_the_whole_image_encoder() {
        // EM-like: smooth structure plus noise, the content the filter was chosen for.
        let (w, h) = (301u32, 77u32);
        let pixels: Vec<u8> = (0..w * h)
            .map(|i| {
                let (x, y) = (f64::from(i % w), f64::from(i / w));
                // The top 5 bits of a SplitMix64 step of the index: noise without structure.
                let mut z = u64::from(i).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                let noise = ((z ^ (z >> 31)) >> 59) as f64;
                (128.0 + 60.0 * (x / 17.0).sin() * (y / 23.0).cos() + noise) as u8
            })
            .collect();
        let mut encoder = PngRowEncoder::new(w, h).unwrap();
        let mut png = Vec::new();
        for band in pixels.chunks(10 * w as usize) {
            encoder.write_rows(band).unwrap();
            png.extend(encoder.take_encoded());
        }
        png.extend(encoder.finish().unwrap());
        assert!(png.ends_with(&[0, 0, 0, 0, b'I', b'E', b'N', b'D', 174, 66, 96, 130]));
        let decoded = image::load_from_memory_with_format(&png, image::ImageFormat::Png).unwrap();
        let image::DynamicImage::ImageLuma8(gray) = decoded else {
            panic!("not 8-bit grey");
        };
        assert_eq!(gray.dimensions(), (w, h));
        assert_eq!(gray.into_raw(), pixels);
        let whole = crate::tilepack::encode_png(&pixels, w, h).unwrap();
        assert!(
            png.len() < whole.len() * 11 / 10,
            "{} vs {}",
            png.len(),
            whole.len()
        );
    }

    #[test]
    fn missing_rows_are_an_error() {
        let mut encoder = PngRowEncoder::new(4, 4).unwrap();
        encoder.write_rows(&[0; 8]).unwrap();
        let e = encoder.finish().unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Internal);
        assert!(e.message().starts_with("encoding a 4×4 png: "), "{e}");
    }
}
