//! `alignedslice`: resample one raw slice into the aligned frame, write its PNG and tile pack.

use super::Written;
use crate::request::AlignedSliceRequest;
use crate::resample::affine::AffineTransform;
use crate::resample::bicubic::resample_affine;
use crate::storage::{self, Storage};
use crate::tilepack::{encode_png, encode_tile_pack};
use crate::{Error, ErrorKind, Result};

/// Largest raw slice we decode, in bytes of pixels (the component's memory is capped at 2 GiB
/// by default and holds the raw and the aligned image at once).
const MAX_DECODED_BYTES: u64 = 1 << 30;

/// Runs one alignedslice task. Writes `<dest>/align/<img>` then `<dest-tmp>/<slice>`.
pub async fn run(storage: &impl Storage, request: &AlignedSliceRequest) -> Result<Written> {
    let retries_before = storage.retries();
    let raw_object = request.dest.object(&format!("raw/{}", request.img));
    let encoded = storage.get(&raw_object).await?;
    let (pixels, width, height) = decode_gray(&encoded, &raw_object)?;
    drop(encoded);

    let inverse = AffineTransform::new(request.transform).inverse()?;
    let [out_w, out_h] = request.bbox;
    let aligned = resample_affine(
        &pixels,
        width as usize,
        height as usize,
        &inverse,
        out_w as usize,
        out_h as usize,
    );
    drop(pixels);
    if aligned.len() != out_w as usize * out_h as usize {
        return Err(Error::new(
            ErrorKind::TooLarge,
            format!("bbox: cannot allocate an aligned frame of {out_w}×{out_h}"),
        ));
    }

    let mut written = Written::default();
    let png = encode_png(&aligned, out_w, out_h)?;
    let aligned_object = request.dest.object(&format!("align/{}", request.img));
    written
        .put(storage, &aligned_object, &png, storage::PNG)
        .await?;
    drop(png);

    let pack = encode_tile_pack(&aligned, out_w, out_h, request.shard_size)?;
    let pack_object = request.dest_tmp.object(&request.slice.to_string());
    written
        .put(storage, &pack_object, &pack, storage::BINARY)
        .await?;
    written.retries = storage.retries().saturating_sub(retries_before);
    Ok(written)
}

/// Decodes a PNG, TIFF or JPEG that must be 8-bit grayscale.
fn decode_gray(
    bytes: &[u8],
    what: &crate::storage::location::ObjectPath,
) -> Result<(Vec<u8>, u32, u32)> {
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
    let (w, h) = gray.dimensions();
    Ok((gray.into_raw(), w, h))
}
