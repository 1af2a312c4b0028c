//! `alignedslice`: resample one raw slice into the aligned frame, write its PNG and tile pack.

use super::Written;
use crate::layout::tile_pack_object;
use crate::request::AlignedSliceRequest;
use crate::resample::affine::AffineTransform;
use crate::resample::bicubic::resample_affine;
use crate::slice_image::decode_gray;
use crate::storage::{self, Storage};
use crate::tilepack::{encode_png, encode_tile_pack};
use crate::{Error, ErrorKind, Result};

/// Runs one alignedslice task. Writes `<dest>/align/<img>` then `<dest-tmp>/<slice>`, after
/// checking that both can be written: a task that fails leaves neither or, only when the store
/// fails between the two puts, a whole aligned PNG without its tile pack.
pub async fn run(storage: &impl Storage, request: &AlignedSliceRequest) -> Result<Written> {
    let retries_before = storage.retries();
    let raw_object = request.dest.object(&format!("raw/{}", request.img));
    let aligned_object = request.dest.object(&format!("align/{}", request.img));
    let pack_object = tile_pack_object(&request.dest_tmp, request.slice.into());
    let encoded = storage.get(&raw_object).await?;
    let raw = decode_gray(&encoded, &raw_object)?;
    drop(encoded);

    let inverse = AffineTransform::new(request.transform).inverse()?;
    let [out_w, out_h] = request.bbox;
    let aligned = resample_affine(
        &raw.pixels,
        raw.width as usize,
        raw.height as usize,
        &inverse,
        out_w as usize,
        out_h as usize,
    );
    drop(raw);
    if aligned.len() != out_w as usize * out_h as usize {
        return Err(Error::new(
            ErrorKind::TooLarge,
            format!("bbox: cannot allocate an aligned frame of {out_w}×{out_h}"),
        ));
    }

    storage.check_writable(&aligned_object).await?;
    storage.check_writable(&pack_object).await?;
    let mut written = Written::default();
    let png = encode_png(&aligned, out_w, out_h)?;
    written
        .put(storage, &aligned_object, &png, storage::PNG)
        .await?;
    drop(png);

    let pack = encode_tile_pack(&aligned, out_w, out_h, request.shard_size)?;
    written
        .put(storage, &pack_object, &pack, storage::BINARY)
        .await?;
    written.retries = storage.retries().saturating_sub(retries_before);
    Ok(written)
}
