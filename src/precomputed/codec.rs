//! Chunk encodings: `raw` and `jpeg` chunks of uint8 voxels, edge chunks clipped.
//!
//! Spec: <https://github.com/google/neuroglancer/blob/master/src/datasource/precomputed/volume.md#raw-chunk-encoding>
//! and `#jpeg-chunk-encoding` (docs/design.md §5). Voxels are ordered x fastest, then y, then z. A
//! chunk at the upper edge of the volume holds only the voxels inside it (readers check the exact
//! byte or pixel count), so `extent` is the clipped extent, never the nominal chunk size.

use std::fmt;

use image::codecs::jpeg::JpegDecoder;
use image::{DynamicImage, ImageDecoder};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// How a scale's chunks are encoded (the info's `encoding`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// The voxels as they are, no header.
    Raw,
    /// A grayscale JPEG of width x and height y·z (rows in y, then z order).
    Jpeg,
}

impl Encoding {
    /// The name used in the info file and in emwrite's object paths: `"raw"` or `"jpeg"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Raw => "raw",
            Self::Jpeg => "jpeg",
        }
    }
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Encodes one chunk of `extent` = `[x, y, z]` voxels (x fastest, then y, then z).
///
/// `jpeg_quality` (1–100; tensorstore's default is 75) matters only for [`Encoding::Jpeg`].
/// Fails (an emwrite bug) if `voxels` does not hold exactly x·y·z bytes, and for a JPEG wider or
/// taller than the format's 65535 pixels.
///
/// ```
/// use emwrite::precomputed::codec::{Encoding, decode_chunk, encode_chunk};
/// let voxels: Vec<u8> = (0..2 * 3 * 4).collect();
/// let raw = encode_chunk(Encoding::Raw, &voxels, [2, 3, 4], 75)?;
/// assert_eq!(raw, voxels);
/// let jpeg = encode_chunk(Encoding::Jpeg, &voxels, [2, 3, 4], 75)?;
/// assert_eq!(decode_chunk(Encoding::Jpeg, &jpeg, [2, 3, 4])?.len(), 24);
/// # Ok::<(), emwrite::Error>(())
/// ```
pub fn encode_chunk(
    encoding: Encoding,
    voxels: &[u8],
    extent: [usize; 3],
    jpeg_quality: u8,
) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    encode_chunk_into(encoding, voxels, extent, jpeg_quality, &mut bytes)?;
    Ok(bytes)
}

/// [`encode_chunk`], appending the chunk to `out` rather than allocating: the pyramid encodes
/// straight into a shard's buffer. On error `out` may hold part of a chunk; the caller drops it.
pub fn encode_chunk_into(
    encoding: Encoding,
    voxels: &[u8],
    extent: [usize; 3],
    jpeg_quality: u8,
    out: &mut Vec<u8>,
) -> Result<()> {
    let expected = voxel_count(extent).filter(|&count| count == voxels.len());
    if expected.is_none() {
        return Err(Error::internal(format_args!(
            "{encoding} chunk of extent {extent:?}: got {} voxels",
            voxels.len()
        )));
    }
    match encoding {
        Encoding::Raw => out.extend_from_slice(voxels),
        Encoding::Jpeg => {
            let (width, height) = jpeg_dimensions(extent).ok_or_else(|| {
                Error::internal(format_args!(
                    "jpeg chunk of extent {extent:?}: more than 65535 pixels wide or tall"
                ))
            })?;
            let start = out.len();
            jpeg_encoder::Encoder::new(&mut *out, jpeg_quality)
                .encode(voxels, width, height, jpeg_encoder::ColorType::Luma)
                .map_err(|e| {
                    Error::internal(format_args!("jpeg chunk of extent {extent:?}: {e}"))
                })?;
            tables_before_frame_header(&mut out[start..]);
        }
    }
    Ok(())
}

/// A chunk encoded z-slice by z-slice as its voxels arrive, into the bytes [`encode_chunk_into`]
/// writes for the whole chunk: a chunk's voxels are its slices one after another, and its JPEG
/// is their rows top to bottom, so neither encoding needs the chunk whole.
pub struct ChunkSlices {
    sink: SliceSink,
    extent: [usize; 3],
    slices_taken: usize,
}

impl fmt::Debug for ChunkSlices {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChunkSlices")
            .field("extent", &self.extent)
            .field("slices_taken", &self.slices_taken)
            .finish_non_exhaustive()
    }
}

enum SliceSink {
    Raw(Vec<u8>),
    /// Boxed: the encoder's state (tables, the strip) is ~5 KB, and a layer holds 256 of them.
    Jpeg(Box<jpeg_encoder::LumaRowEncoder<Vec<u8>>>),
}

impl ChunkSlices {
    /// Starts a chunk of `extent` = `[x, y, z]` voxels in `encoding`.
    pub fn new(encoding: Encoding, extent: [usize; 3], jpeg_quality: u8) -> Result<Self> {
        let voxels = voxel_count(extent).ok_or_else(|| {
            Error::internal(format_args!(
                "{encoding} chunk of extent {extent:?}: too large"
            ))
        })?;
        let sink = match encoding {
            Encoding::Raw => SliceSink::Raw(Vec::with_capacity(voxels)),
            Encoding::Jpeg => {
                let (width, height) = jpeg_dimensions(extent).ok_or_else(|| {
                    Error::internal(format_args!(
                        "jpeg chunk of extent {extent:?}: more than 65535 pixels wide or tall"
                    ))
                })?;
                let rows = jpeg_encoder::Encoder::new(Vec::new(), jpeg_quality)
                    .start_luma_rows(width, height)
                    .map_err(|e| {
                        Error::internal(format_args!("jpeg chunk of extent {extent:?}: {e}"))
                    })?;
                SliceSink::Jpeg(Box::new(rows))
            }
        };
        Ok(Self {
            sink,
            extent,
            slices_taken: 0,
        })
    }

    /// Takes the chunk's next z-slice: `x · y` voxels, x fastest.
    pub fn push_slice(&mut self, voxels: &[u8]) -> Result<()> {
        let [x, y, z] = self.extent;
        if voxels.len() != x * y || self.slices_taken == z {
            return Err(Error::internal(format_args!(
                "chunk of extent {:?}: slice {} of {} voxels",
                self.extent,
                self.slices_taken,
                voxels.len()
            )));
        }
        match &mut self.sink {
            SliceSink::Raw(bytes) => bytes.extend_from_slice(voxels),
            SliceSink::Jpeg(rows) => rows.push_rows(voxels).map_err(|e| {
                Error::internal(format_args!("jpeg chunk of extent {:?}: {e}", self.extent))
            })?,
        }
        self.slices_taken += 1;
        Ok(())
    }

    /// The encoded chunk, once every slice is in.
    pub fn finish(self) -> Result<Vec<u8>> {
        let extent = self.extent;
        if self.slices_taken != extent[2] {
            return Err(Error::internal(format_args!(
                "chunk of extent {extent:?}: finished after {} slices",
                self.slices_taken
            )));
        }
        match self.sink {
            SliceSink::Raw(bytes) => Ok(bytes),
            SliceSink::Jpeg(rows) => {
                let mut jpeg = rows.finish().map_err(|e| {
                    Error::internal(format_args!("jpeg chunk of extent {extent:?}: {e}"))
                })?;
                tables_before_frame_header(&mut jpeg);
                Ok(jpeg)
            }
        }
    }
}

/// Moves the quantisation tables (DQT segments) that follow the frame header (SOF) before it, as
/// libjpeg orders them; the JPEG keeps its length and meaning.
///
/// `jpeg-encoder` writes SOF first, which ITU T.81 allows (§B.2.4: tables need only precede the
/// scan), but Neuroglancer's decoder (pdf.js's jpg.js) looks the tables up as it reads SOF and
/// fails every chunk ("Cannot read properties of undefined"), so the viewer shows nothing.
fn tables_before_frame_header(jpeg: &mut [u8]) {
    const SOF0: u8 = 0xc0;
    const DQT: u8 = 0xdb;
    const SOS: u8 = 0xda;
    let mut frame_header = None;
    let mut tables_end = None;
    // Marker segments after SOI: 0xFF, the marker, a big-endian length that counts itself.
    let mut at = 2;
    while let [0xff, marker, high, low, ..] = jpeg[at.min(jpeg.len())..] {
        if marker == SOS {
            break;
        }
        let end = at + 2 + usize::from(u16::from_be_bytes([high, low]));
        match marker {
            SOF0 if frame_header.is_none() => frame_header = Some(at..end),
            DQT if frame_header.is_some() => tables_end = Some(end),
            _ => {}
        }
        at = end;
    }
    if let (Some(frame_header), Some(tables_end)) = (frame_header, tables_end)
        && tables_end <= jpeg.len()
    {
        jpeg[frame_header.start..tables_end].rotate_left(frame_header.len());
    }
}

/// Decodes one chunk of `extent` = `[x, y, z]` voxels, checking that it holds exactly that many.
///
/// A chunk of the wrong size, a truncated JPEG or a colour JPEG is an
/// [`crate::ErrorKind::UnreadableInput`] error.
pub fn decode_chunk(encoding: Encoding, bytes: &[u8], extent: [usize; 3]) -> Result<Vec<u8>> {
    match encoding {
        Encoding::Raw => match voxel_count(extent) {
            Some(count) if count == bytes.len() => Ok(bytes.to_vec()),
            _ => Err(Error::unreadable(
                "raw chunk",
                format_args!("expected {extent:?} voxels, got {} bytes", bytes.len()),
            )),
        },
        Encoding::Jpeg => decode_jpeg(bytes, extent),
    }
}

fn decode_jpeg(bytes: &[u8], extent: [usize; 3]) -> Result<Vec<u8>> {
    // The image crate's JPEG decoder (zune-jpeg, non-strict) fills a truncated scan with grey
    // rather than failing, so check for the end-of-image marker that every complete JPEG ends with
    // (ITU T.81 §B.2.1) before decoding.
    if !bytes.ends_with(&[0xff, 0xd9]) {
        return Err(Error::unreadable(
            "jpeg chunk",
            format_args!(
                "truncated: {} bytes with no end-of-image marker",
                bytes.len()
            ),
        ));
    }
    // The decoder allocates what the JPEG's header claims: read the header first and refuse any
    // size but the chunk's, so a corrupt or hostile chunk cannot make a reader allocate more.
    let decoder = JpegDecoder::new(std::io::Cursor::new(bytes))
        .map_err(|e| Error::unreadable("jpeg chunk", e))?;
    let (width, height) = decoder.dimensions();
    let expected = jpeg_dimensions(extent).map(|(w, h)| (u32::from(w), u32::from(h)));
    if expected != Some((width, height)) {
        return Err(Error::unreadable(
            "jpeg chunk",
            format_args!("expected {extent:?} voxels, got a {width}×{height} image"),
        ));
    }
    let image =
        DynamicImage::from_decoder(decoder).map_err(|e| Error::unreadable("jpeg chunk", e))?;
    let DynamicImage::ImageLuma8(gray) = image else {
        return Err(Error::unreadable(
            "jpeg chunk",
            format_args!("expected a grayscale image, got {:?}", image.color()),
        ));
    };
    Ok(gray.into_raw())
}

fn voxel_count([x, y, z]: [usize; 3]) -> Option<usize> {
    x.checked_mul(y)?.checked_mul(z)
}

/// The JPEG image size for a chunk: x wide, y·z tall; `None` past JPEG's 65535-pixel limit.
fn jpeg_dimensions([x, y, z]: [usize; 3]) -> Option<(u16, u16)> {
    let width = u16::try_from(x).ok()?;
    let height = u16::try_from(y.checked_mul(z)?).ok()?;
    Some((width, height))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;
    use image::ImageFormat;

    #[test]
    fn chunks_fed_slice_by_slice_are_the_chunks_encoded_whole() {
        for extent in [[64, 64, 64], [20, 13, 7], [1, 1, 1], [64, 3, 64]] {
            let [x, y, z] = extent;
            let voxels: Vec<u8> = (0..x * y * z).map(|i| ((i * 37) % 253) as u8).collect();
            for encoding in [Encoding::Raw, Encoding::Jpeg] {
                let whole = encode_chunk(encoding, &voxels, extent, 75).unwrap();
                let mut slices = ChunkSlices::new(encoding, extent, 75).unwrap();
                for slice in voxels.chunks(x * y) {
                    slices.push_slice(slice).unwrap();
                }
                assert!(slices.finish().unwrap() == whole, "{encoding} {extent:?}");
            }
        }
        let mut short = ChunkSlices::new(Encoding::Jpeg, [8, 8, 2], 75).unwrap();
        short.push_slice(&[0; 64]).unwrap();
        assert!(short.push_slice(&[0; 63]).is_err());
        assert_eq!(short.finish().unwrap_err().kind(), ErrorKind::Internal);
    }

    /// A smooth ramp with a little texture: what JPEG is meant for.
    fn smooth(extent: [usize; 3]) -> Vec<u8> {
        let [nx, ny, nz] = extent;
        let mut voxels = Vec::with_capacity(nx * ny * nz);
        for z in 0..nz {
            for y in 0..ny {
                for x in 0..nx {
                    voxels.push((40 + x + 2 * y + 3 * z) as u8);
                }
            }
        }
        voxels
    }

    fn rms(a: &[u8], b: &[u8]) -> f64 {
        let sum: f64 = a
            .iter()
            .zip(b)
            .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
            .sum();
        (sum / a.len() as f64).sqrt()
    }

    #[test]
    fn raw_round_trip_is_exact() {
        for extent in [[64, 64, 64], [5, 64, 64], [64, 3, 1], [1, 1, 1]] {
            let voxels: Vec<u8> = (0..voxel_count(extent).expect("small"))
                .map(|i| (i * 7) as u8)
                .collect();
            let raw = encode_chunk(Encoding::Raw, &voxels, extent, 75).expect("encodes");
            assert_eq!(raw, voxels, "raw is the voxels, no header");
            assert_eq!(
                decode_chunk(Encoding::Raw, &raw, extent).expect("decodes"),
                voxels
            );
        }
    }

    #[test]
    fn jpeg_round_trip_is_close_on_smooth_data() {
        // Full chunks and clipped edge chunks (not multiples of JPEG's 8×8 blocks).
        for extent in [[64, 64, 64], [37, 64, 20], [64, 5, 3]] {
            let voxels = smooth(extent);
            let jpeg = encode_chunk(Encoding::Jpeg, &voxels, extent, 75).expect("encodes");
            let decoded = decode_chunk(Encoding::Jpeg, &jpeg, extent).expect("decodes");
            assert_eq!(decoded.len(), voxels.len());
            let rms = rms(&voxels, &decoded);
            assert!(rms < 3.0, "rms {rms} for {extent:?}");
        }
    }

    #[test]
    fn jpeg_is_x_wide_and_y_times_z_tall() {
        let jpeg =
            encode_chunk(Encoding::Jpeg, &smooth([64, 64, 64]), [64, 64, 64], 75).expect("encodes");
        let image = image::load_from_memory_with_format(&jpeg, ImageFormat::Jpeg).expect("jpeg");
        assert_eq!((image.width(), image.height()), (64, 4096));
        assert_eq!(image.color(), image::ColorType::L8);
    }

    /// The marker of every segment before the scan, in order.
    fn header_markers(jpeg: &[u8]) -> Vec<u8> {
        let mut markers = Vec::new();
        let mut at = 2;
        while let [0xff, marker, high, low, ..] = jpeg[at..] {
            markers.push(marker);
            if marker == 0xda {
                break;
            }
            at += 2 + usize::from(u16::from_be_bytes([high, low]));
        }
        markers
    }

    #[test]
    fn jpeg_tables_precede_the_frame_header_as_neuroglancer_needs() {
        let extent = [64, 64, 2];
        let bytes = encode_chunk(Encoding::Jpeg, &smooth(extent), extent, 75).expect("encodes");
        // APP0 (JFIF), DQT, DQT, SOF0, DHT, DHT, SOS: libjpeg's order.
        assert_eq!(
            header_markers(&bytes),
            [0xe0, 0xdb, 0xdb, 0xc0, 0xc4, 0xc4, 0xda]
        );
        let decoded = decode_chunk(Encoding::Jpeg, &bytes, extent).expect("decodes");
        assert!(rms(&decoded, &smooth(extent)) < 3.0);
    }

    #[test]
    fn truncated_chunks_are_errors() {
        let extent = [16, 8, 4];
        let voxels = smooth(extent);
        let raw = encode_chunk(Encoding::Raw, &voxels, extent, 75).expect("encodes");
        let e = decode_chunk(Encoding::Raw, &raw[..raw.len() - 1], extent).expect_err("short");
        assert_eq!(e.kind(), ErrorKind::UnreadableInput);
        assert!(e.message().contains("got 511 bytes"), "{e}");

        // Test that truncating the chunk leads to a decoding error (as tensorstore's
        // chunk_encoding_test does), at every length.
        let jpeg = encode_chunk(Encoding::Jpeg, &voxels, extent, 75).expect("encodes");
        for len in 0..jpeg.len() {
            let e = decode_chunk(Encoding::Jpeg, &jpeg[..len], extent).expect_err("truncated");
            assert_eq!(e.kind(), ErrorKind::UnreadableInput, "{len}: {e}");
        }
    }

    #[test]
    fn wrong_size_is_an_error() {
        let voxels = smooth([8, 8, 8]);
        let e = decode_chunk(Encoding::Raw, &voxels, [8, 8, 7]).expect_err("too long");
        assert!(
            e.message()
                .starts_with("raw chunk: expected [8, 8, 7] voxels"),
            "{e}"
        );

        let jpeg = encode_chunk(Encoding::Jpeg, &voxels, [8, 8, 8], 75).expect("encodes");
        // Same pixel count (8×64), other shape: readers check width and height.
        let e = decode_chunk(Encoding::Jpeg, &jpeg, [16, 8, 4]).expect_err("other shape");
        assert!(e.message().contains("got a 8×64 image"), "{e}");

        let e = encode_chunk(Encoding::Raw, &voxels, [8, 8, 7], 75).expect_err("caller bug");
        assert_eq!(e.kind(), ErrorKind::Internal);
        let e = encode_chunk(Encoding::Jpeg, &[0; 70000], [70000, 1, 1], 75).expect_err("too wide");
        assert!(e.message().contains("65535"), "{e}");
    }

    #[test]
    fn colour_jpeg_is_an_error() {
        let mut bytes = Vec::new();
        jpeg_encoder::Encoder::new(&mut bytes, 75)
            .encode(&[128; 8 * 8 * 3], 8, 8, jpeg_encoder::ColorType::Rgb)
            .expect("encodes");
        let e = decode_chunk(Encoding::Jpeg, &bytes, [8, 8, 1]).expect_err("colour");
        assert!(e.message().contains("grayscale"), "{e}");
    }

    #[test]
    fn encoding_names_match_the_info() {
        assert_eq!(
            serde_json::to_string(&Encoding::Jpeg).expect("json"),
            "\"jpeg\""
        );
        assert_eq!(
            serde_json::from_str::<Encoding>("\"raw\"").expect("json"),
            Encoding::Raw
        );
        assert!(serde_json::from_str::<Encoding>("\"png\"").is_err());
        assert_eq!(Encoding::Jpeg.to_string(), "jpeg");
    }
}
