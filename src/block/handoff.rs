//! What one half of a block hands to the merge, and its bytes.
//!
//! docs/design.md §4 "ngshard" and [`BlockHalf`]: each half of a block (one task each, e.g. two
//! component instances on two cores) writes its own whole scale-0 shards and ends with a
//! [`HalfHandoff`]: the files of its partial shards (its chunks of the shards at scales 1–3,
//! which hold chunks of both halves) and its half of the voxels of the scale-4 chunk, which
//! straddles the halves. The merge ([`super::merge`]) takes both.
//!
//! The hand-off travels between tasks as bytes ([`HalfHandoff::to_bytes`]): the caller (the
//! host) keeps it and passes both to the merge task, so nothing is written under a temporary
//! name in the destination and nothing is left to delete when a task fails. Its format is
//! emwrite's own, versioned by its first line; only emwrite reads it. It also lists the objects
//! the half wrote, so that the merge can name every object of the block in its manifest
//! ([`super::manifest`]).

use std::borrow::Cow;

use super::manifest::ListedObject;
use crate::layout::BlockHalf;
use crate::precomputed::codec::Encoding;
use crate::{Error, Result};

/// First bytes of a hand-off: names the format and its version.
const MAGIC: &[u8] = b"emwrite block half v2\n";

/// What one half of a block hands to the merge: owned by the half that makes it, borrowed from
/// its bytes by the merge that reads it ([`HalfHandoff::from_bytes`]), so that the merge holds
/// the partial shards once, not twice (with `writeRaw`, a half's are about 80 MiB).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HalfHandoff<'a> {
    /// Which half this is.
    pub half: BlockHalf,
    /// The block, `[bx, by, bz]`.
    pub block: [u64; 3],
    /// The encodings the half encoded its chunks in.
    pub encodings: Vec<Encoding>,
    /// The JPEG quality the half encoded its chunks with.
    pub jpeg_quality: u8,
    /// The half's partial shards, each a valid shard file holding only the half's chunks.
    pub shards: Vec<PartialShardFile<'a>>,
    /// The half's half of the coarsest scale's slab, when that scale's block is a single chunk
    /// (scale 4): the half's 32 slices of the 64³ chunk; `None` if all zero or if no scale
    /// straddles.
    pub coarsest: Option<Cow<'a, [u8]>>,
    /// The objects the half wrote itself (its scale-0 shards), for the block's manifest.
    pub written: Vec<ListedObject>,
}

/// The file of a shard holding only one half's chunks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartialShardFile<'a> {
    /// The encoding of its chunks.
    pub encoding: Encoding,
    /// The key of its scale, e.g. `"16.0x16.0x16.0"`.
    pub scale_key: String,
    /// The name of the whole shard's file, e.g. `"000000.shard"`.
    pub file_name: String,
    /// The shard file of the half's chunks.
    pub bytes: Cow<'a, [u8]>,
}

impl<'a> HalfHandoff<'a> {
    /// The hand-off as bytes, to carry it from the half's task to the merge's.
    ///
    /// After the line `emwrite block half v1`, in order: the half (one byte, 0 lower, 1 upper);
    /// the block (3 × u64); the encodings (a count, then each name); the JPEG quality (one
    /// byte); the partial shards (a count, then each shard's encoding, scale key, file name and
    /// bytes); the coarsest voxels (one byte, 1 if present, then the bytes); the objects the
    /// half wrote (a count, then each name and its size as a u64). Counts are u64 and
    /// every name or byte string is a u64 length and the bytes; integers are little-endian.
    pub fn to_bytes(&self) -> Vec<u8> {
        let payload: usize = self.shards.iter().map(|s| s.bytes.len()).sum::<usize>()
            + self.coarsest.as_ref().map_or(0, |voxels| voxels.len());
        let mut out = Vec::with_capacity(payload + 1024);
        out.extend_from_slice(MAGIC);
        out.push(match self.half {
            BlockHalf::Lower => 0,
            BlockHalf::Upper => 1,
        });
        for b in self.block {
            put_u64(&mut out, b);
        }
        put_u64(&mut out, self.encodings.len() as u64);
        for encoding in &self.encodings {
            put_bytes(&mut out, encoding.as_str().as_bytes());
        }
        out.push(self.jpeg_quality);
        put_u64(&mut out, self.shards.len() as u64);
        for shard in &self.shards {
            put_bytes(&mut out, shard.encoding.as_str().as_bytes());
            put_bytes(&mut out, shard.scale_key.as_bytes());
            put_bytes(&mut out, shard.file_name.as_bytes());
            put_bytes(&mut out, &shard.bytes);
        }
        match &self.coarsest {
            Some(voxels) => {
                out.push(1);
                put_bytes(&mut out, voxels);
            }
            None => out.push(0),
        }
        put_u64(&mut out, self.written.len() as u64);
        for object in &self.written {
            put_bytes(&mut out, object.name.as_bytes());
            put_u64(&mut out, object.bytes);
        }
        out
    }

    /// Reads a hand-off made by [`HalfHandoff::to_bytes`]; `field` names it in errors (a bad
    /// hand-off is the caller's fault: 400).
    pub fn from_bytes(bytes: &'a [u8], field: &str) -> Result<Self> {
        let mut reader = Reader { bytes, field };
        if reader.take(MAGIC.len())? != MAGIC {
            return Err(Error::bad_field(
                field,
                "not an emwrite block-half hand-off",
            ));
        }
        let half = match reader.u8()? {
            0 => BlockHalf::Lower,
            1 => BlockHalf::Upper,
            other => return Err(Error::bad_field(field, format_args!("half {other}"))),
        };
        let block = [reader.u64()?, reader.u64()?, reader.u64()?];
        let encodings = (0..reader.count()?)
            .map(|_| reader.encoding())
            .collect::<Result<Vec<_>>>()?;
        let jpeg_quality = reader.u8()?;
        let shards = (0..reader.count()?)
            .map(|_| {
                Ok(PartialShardFile {
                    encoding: reader.encoding()?,
                    scale_key: reader.string()?,
                    file_name: reader.string()?,
                    bytes: Cow::Borrowed(reader.bytes()?),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let coarsest = match reader.u8()? {
            0 => None,
            1 => Some(Cow::Borrowed(reader.bytes()?)),
            other => {
                return Err(Error::bad_field(
                    field,
                    format_args!("coarsest flag {other}"),
                ));
            }
        };
        let written = (0..reader.count()?)
            .map(|_| {
                Ok(ListedObject {
                    name: reader.string()?,
                    bytes: reader.u64()?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        if !reader.bytes.is_empty() {
            return Err(Error::bad_field(
                field,
                format_args!("{} bytes after the end", reader.bytes.len()),
            ));
        }
        Ok(Self {
            half,
            block,
            encodings,
            jpeg_quality,
            shards,
            coarsest,
            written,
        })
    }
}

fn put_u64(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(&value.to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_u64(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Reads a hand-off front to back; errors name `field`.
struct Reader<'a, 'f> {
    bytes: &'a [u8],
    field: &'f str,
}

impl<'a> Reader<'a, '_> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.bytes.len() < n {
            return Err(Error::bad_field(self.field, "the hand-off is cut short"));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn u64(&mut self) -> Result<u64> {
        let bytes = self.take(8)?;
        // `take(8)` returned exactly 8 bytes.
        Ok(u64::from_le_bytes(bytes.try_into().expect("8 bytes")))
    }

    /// A count of items each at least one byte long, so a corrupt count fails here rather than
    /// reserving memory for it.
    fn count(&mut self) -> Result<u64> {
        let count = self.u64()?;
        if count > self.bytes.len() as u64 {
            return Err(Error::bad_field(self.field, "the hand-off is cut short"));
        }
        Ok(count)
    }

    fn bytes(&mut self) -> Result<&'a [u8]> {
        let len = self.u64()?;
        let len = usize::try_from(len)
            .map_err(|_| Error::bad_field(self.field, "the hand-off is cut short"))?;
        self.take(len)
    }

    fn string(&mut self) -> Result<String> {
        let bytes = self.bytes()?;
        String::from_utf8(bytes.to_vec())
            .map_err(|_| Error::bad_field(self.field, "a name in the hand-off is not UTF-8"))
    }

    fn encoding(&mut self) -> Result<Encoding> {
        match self.bytes()? {
            b"jpeg" => Ok(Encoding::Jpeg),
            b"raw" => Ok(Encoding::Raw),
            _ => Err(Error::bad_field(
                self.field,
                "an encoding in the hand-off is not jpeg or raw",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handoff() -> HalfHandoff<'static> {
        HalfHandoff {
            half: BlockHalf::Upper,
            block: [1, 0, 2],
            encodings: vec![Encoding::Jpeg, Encoding::Raw],
            jpeg_quality: 90,
            shards: vec![PartialShardFile {
                encoding: Encoding::Raw,
                scale_key: "16.0x16.0x16.0".to_owned(),
                file_name: "000001.shard".to_owned(),
                bytes: vec![1, 2, 3].into(),
            }],
            coarsest: Some(vec![7; 5].into()),
            written: vec![ListedObject {
                name: "neuroglancer/raw/8.0x8.0x8.0/000008.shard".to_owned(),
                bytes: 5,
            }],
        }
    }

    #[test]
    fn a_handoff_round_trips_through_its_bytes() {
        let handoff = handoff();
        let bytes = handoff.to_bytes();
        assert!(bytes.starts_with(MAGIC));
        assert_eq!(
            HalfHandoff::from_bytes(&bytes, "upper").expect("reads"),
            handoff
        );
        let none = HalfHandoff {
            coarsest: None,
            shards: Vec::new(),
            ..handoff
        };
        assert_eq!(
            HalfHandoff::from_bytes(&none.to_bytes(), "upper").expect("reads"),
            none
        );
    }

    #[test]
    fn a_cut_or_padded_handoff_is_a_bad_field() {
        let bytes = handoff().to_bytes();
        for cut in 0..bytes.len() {
            let e = HalfHandoff::from_bytes(&bytes[..cut], "lower").expect_err("cut");
            assert!(e.message().starts_with("lower: "), "{cut}: {e}");
            assert_eq!(e.kind(), crate::ErrorKind::BadRequest);
        }
        let e = HalfHandoff::from_bytes(&[bytes.as_slice(), b"x"].concat(), "lower")
            .expect_err("trailing byte");
        assert_eq!(e.message(), "lower: 1 bytes after the end");
        let e = HalfHandoff::from_bytes(b"emwrite block half v1\n", "upper").expect_err("v1");
        assert_eq!(e.message(), "upper: not an emwrite block-half hand-off");
    }
}
