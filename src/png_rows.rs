//! Encoding an 8-bit grey PNG band of rows after band of rows, for images not held whole.
//!
//! [`crate::tilepack::encode_png`] encodes a whole image through the `image` crate with
//! `CompressionType::Fast` and `FilterType::Adaptive`, which `image` 0.25 hands to the `png`
//! crate as `png::Compression::Fast` (fdeflate's PNG-tuned DEFLATE) and `png::Filter::Adaptive`
//! (per row, the filter with the smallest sum of absolute differences). [`PngRowEncoder`] uses
//! the same DEFLATE, fdeflate's `Compressor`, but one filter for every row, `Avg`: the aligned
//! PNG's bytes are emwrite's choice (only its pixels must be Pillow's), and on EM-like slices
//! trying all five filters per row bought nothing. Measured in wasm on the aligned 8192² slice
//! of `make_stack`: Adaptive 378 ms and 54.4 MB, Avg 238 ms and 54.4 MB, Paeth 250 ms and 56.2
//! MB, Up 239 ms and 56.9 MB, no filter 100.5 MB. The pixels are the same as the whole-image
//! path's; the bytes differ, and also because that path falls back to stored blocks when DEFLATE
//! does not pay, which a stream cannot know in advance.
//!
//! The PNG's chunks are framed here, not by `png`'s `StreamWriter`: fdeflate hands its output
//! over eight bytes at a time, and through `png`'s chunk writer those calls were 5% of an
//! aligned slice's time in wasm. Framing is the PNG format's simplest part (signature, `IHDR`,
//! `IDAT`s of the zlib stream, `IEND`, each chunk with its CRC-32); fdeflate writes the zlib
//! stream, Adler-32 included, and `png` decodes what this writes in the tests.

use crate::slice_image::PNG_SIGNATURE;
use crate::{Error, Result};
use std::cell::RefCell;
use std::io::Write;
use std::rc::Rc;

/// Bytes of compressed data per `IDAT` chunk: large enough that chunk framing (12 bytes each)
/// costs nothing measurable, small enough that the compressed bytes are framed as they come, not
/// held twice (a band of a hemibrain-sized frame compresses to about 30 MB).
const IDAT_BYTES: usize = 1 << 20;

/// The PNG filter type byte of `Avg` (PNG specification, 9.2): each byte less the floor of the
/// mean of the byte to its left and the byte above.
const AVG_FILTER: u8 = 3;

/// The compressed bytes, shared between fdeflate's compressor, which owns its writer and offers
/// no way back to it until it finishes, and the encoder, which frames them after each band.
#[derive(Clone, Default)]
struct SharedBuffer(Rc<RefCell<Vec<u8>>>);

impl SharedBuffer {
    /// Frames the bytes held as one `IDAT` chunk onto `out` (none if there are none), and
    /// empties the buffer, keeping its allocation.
    fn frame_onto(&self, out: &mut Vec<u8>) {
        let mut held = self.0.borrow_mut();
        if !held.is_empty() {
            push_chunk(out, b"IDAT", &held);
            held.clear();
        }
    }

    fn len(&self) -> usize {
        self.0.borrow().len()
    }
}

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
    compressor: fdeflate::Compressor<SharedBuffer>,
    compressed: SharedBuffer,
    /// Framed bytes not yet taken: the signature and header until the first band is taken.
    framed: Vec<u8>,
    /// The row above the next one, unfiltered (zeros above the first row).
    above: Vec<u8>,
    /// One filtered row: its filter type byte, then the row.
    filtered: Vec<u8>,
    rows_written: u32,
    width: u32,
    height: u32,
}

impl PngRowEncoder {
    /// Starts the PNG: its signature and header are the first encoded bytes.
    pub fn new(width: u32, height: u32) -> Result<Self> {
        if width == 0 || height == 0 || width > i32::MAX as u32 || height > i32::MAX as u32 {
            return Err(encoding_error(width, height, "no such PNG size"));
        }
        let compressed = SharedBuffer::default();
        let compressor = fdeflate::Compressor::new(compressed.clone())
            .map_err(|e| encoding_error(width, height, e))?;
        let mut framed = PNG_SIGNATURE.to_vec();
        let mut header = [0u8; 13];
        header[..4].copy_from_slice(&width.to_be_bytes());
        header[4..8].copy_from_slice(&height.to_be_bytes());
        // Bit depth 8, colour type 0 (grey); compression, filter method and interlace all 0.
        header[8] = 8;
        push_chunk(&mut framed, b"IHDR", &header);
        let row = width as usize;
        Ok(Self {
            compressor,
            compressed,
            framed,
            above: vec![0; row],
            filtered: vec![0; row + 1],
            rows_written: 0,
            width,
            height,
        })
    }

    /// Encodes the next whole rows, `width` bytes each.
    pub fn write_rows(&mut self, rows: &[u8]) -> Result<()> {
        let (width, height) = (self.width, self.height);
        let row_len = width as usize;
        let count = rows.len() / row_len;
        if !rows.len().is_multiple_of(row_len)
            || count as u64 > u64::from(height - self.rows_written)
        {
            return Err(encoding_error(
                width,
                height,
                format_args!(
                    "{} bytes after {} rows are not whole rows of the image",
                    rows.len(),
                    self.rows_written
                ),
            ));
        }
        for row in rows.chunks_exact(row_len) {
            avg_filter(row, &self.above, &mut self.filtered);
            self.compressor
                .write_data(&self.filtered)
                .map_err(|e| encoding_error(width, height, e))?;
            if self.compressed.len() >= IDAT_BYTES {
                self.compressed.frame_onto(&mut self.framed);
            }
            self.above.copy_from_slice(row);
        }
        self.rows_written += count as u32;
        Ok(())
    }

    /// The bytes encoded since the last call, to be written out: `IDAT` chunks of what the
    /// compressor has given up so far (it keeps a few bytes back until it finishes).
    pub fn take_encoded(&mut self) -> Vec<u8> {
        self.compressed.frame_onto(&mut self.framed);
        std::mem::take(&mut self.framed)
    }

    /// Ends the PNG once every row is written and returns its last bytes.
    pub fn finish(self) -> Result<Vec<u8>> {
        let (width, height) = (self.width, self.height);
        if self.rows_written != height {
            return Err(encoding_error(
                width,
                height,
                format_args!("only {} of its rows were written", self.rows_written),
            ));
        }
        let Self {
            compressor,
            compressed,
            mut framed,
            ..
        } = self;
        // The compressor's last block and the zlib stream's Adler-32.
        compressor
            .finish()
            .map_err(|e| encoding_error(width, height, e))?;
        compressed.frame_onto(&mut framed);
        push_chunk(&mut framed, b"IEND", &[]);
        Ok(framed)
    }
}

/// `row` filtered with `Avg` against the row `above` it into `out`: the filter type byte, then
/// the row. The first byte has no left neighbour (0 stands in, as the specification says).
fn avg_filter(row: &[u8], above: &[u8], out: &mut [u8]) {
    out[0] = AVG_FILTER;
    let out = &mut out[1..];
    out[0] = row[0].wrapping_sub(above[0] >> 1);
    // Independent bytes (the filter reads only unfiltered ones), so this loop vectorises.
    for i in 1..row.len() {
        let mean = ((u16::from(row[i - 1]) + u16::from(above[i])) >> 1) as u8;
        out[i] = row[i].wrapping_sub(mean);
    }
}

/// Appends one PNG chunk: its length, type, data and the CRC-32 of type and data.
fn push_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    let mut crc = flate2::Crc::new();
    crc.update(kind);
    crc.update(data);
    // At most IDAT_BYTES and one row's compressed bytes: far below the 2^31 − 1 a chunk may hold.
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    out.extend_from_slice(&crc.sum().to_be_bytes());
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
    fn bands_past_an_idat_are_framed_in_several() {
        // Noise does not compress: 1.2 MB of it passes IDAT_BYTES within the first band.
        let (w, h) = (1200u32, 1000u32);
        let pixels: Vec<u8> = (0..w * h)
            .map(|i| (u64::from(i).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8)
            .collect();
        let mut encoder = PngRowEncoder::new(w, h).unwrap();
        let mut png = Vec::new();
        for band in pixels.chunks(700 * w as usize) {
            encoder.write_rows(band).unwrap();
            png.extend(encoder.take_encoded());
        }
        png.extend(encoder.finish().unwrap());
        let idats = png.windows(4).filter(|t| *t == b"IDAT").count();
        assert!(idats >= 3, "{idats} IDAT chunks");
        // image's PNG decoder checks every chunk's CRC-32.
        let decoded = image::load_from_memory_with_format(&png, image::ImageFormat::Png).unwrap();
        assert_eq!(decoded.into_luma8().into_raw(), pixels);
    }

    #[test]
    fn rows_past_the_last_or_part_rows_are_an_error() {
        let mut encoder = PngRowEncoder::new(4, 2).unwrap();
        let e = encoder.write_rows(&[0; 6]).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Internal);
        encoder.write_rows(&[0; 8]).unwrap();
        let e = encoder.write_rows(&[0; 4]).unwrap_err();
        assert!(
            e.message()
                .ends_with("4 bytes after 2 rows are not whole rows of the image"),
            "{e}"
        );
        assert!(encoder.finish().is_ok());
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
