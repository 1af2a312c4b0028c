//! Decoding a raw slice image: 8-bit grayscale PNG, TIFF or JPEG, within a memory limit.
//!
//! The original service read slices with Pillow and required 8-bit grayscale (docs/design.md §4
//! "alignedslice"); colour and 16-bit images are an error naming the object, not a conversion.

use crate::storage::location::ObjectPath;
use crate::{Error, ErrorKind, Result};

/// Largest raw slice we decode, in bytes of pixels (the component's memory is capped at 2 GiB
/// by default and holds the raw and the aligned image at once).
pub const MAX_DECODED_BYTES: u64 = 1 << 30;

/// A decoded slice: row-major 8-bit pixels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrayImage {
    /// `width * height` bytes, rows top to bottom.
    pub pixels: Vec<u8>,
    /// Columns.
    pub width: u32,
    /// Rows.
    pub height: u32,
}

/// Decodes `bytes` (the object `what`), which must hold an 8-bit grayscale image.
///
/// ```
/// use emwrite::slice_image::decode_gray;
/// use emwrite::storage::location::Location;
/// let what = Location::parse("dest", "lab").unwrap().object("raw/s1.png");
/// let png = emwrite::tilepack::encode_png(&[0, 255, 7, 9], 2, 2).unwrap();
/// let image = decode_gray(&png, &what).unwrap();
/// assert_eq!((image.width, image.height, image.pixels), (2, 2, vec![0, 255, 7, 9]));
/// assert!(decode_gray(b"not an image", &what).is_err());
/// ```
pub fn decode_gray(bytes: &[u8], what: &ObjectPath) -> Result<GrayImage> {
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| Error::unreadable(what, e))?;
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(MAX_DECODED_BYTES);
    reader.limits(limits);
    let image = reader.decode().map_err(|e| match e {
        image::ImageError::Limits(_) => Error::new(
            ErrorKind::TooLarge,
            format!("{what}: larger than {MAX_DECODED_BYTES} bytes decoded"),
        ),
        other => Error::unreadable(what, format!("cannot decode image: {other}")),
    })?;
    let color = image.color();
    let image::DynamicImage::ImageLuma8(gray) = image else {
        return Err(Error::unreadable(
            what,
            format!("expected an 8-bit grayscale image, got {color:?}"),
        ));
    };
    let (width, height) = gray.dimensions();
    Ok(GrayImage {
        pixels: gray.into_raw(),
        width,
        height,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::location::Location;

    fn what() -> ObjectPath {
        Location::parse("dest", "lab").unwrap().object("raw/s1.png")
    }

    #[test]
    fn colour_and_sixteen_bit_images_are_unreadable_and_named() {
        for image in [
            image::DynamicImage::new_rgb8(3, 2),
            image::DynamicImage::new_luma16(3, 2),
        ] {
            let mut png = Vec::new();
            image
                .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
                .unwrap();
            let e = decode_gray(&png, &what()).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::UnreadableInput);
            assert!(
                e.message()
                    .starts_with("raw/s1.png in bucket lab: expected an 8-bit grayscale image"),
                "{e}"
            );
        }
    }

    #[test]
    fn truncated_image_is_unreadable() {
        let png = crate::tilepack::encode_png(&[9; 64 * 64], 64, 64).unwrap();
        let e = decode_gray(&png[..png.len() / 2], &what()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::UnreadableInput);
        assert!(e.message().contains("cannot decode image"), "{e}");
    }
}
