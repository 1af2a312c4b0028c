//! The sharding spec: chunk id → shard and minishard, and shard file names.
//!
//! Spec: <https://github.com/google/neuroglancer/blob/master/src/datasource/precomputed/sharded.md>
//! (docs/design.md §5 "Shard and minishard"; emwrite's parameters are the layout's, §4
//! "ngmeta"). emwrite writes and reads one flavour of `neuroglancer_uint64_sharded_v1`: the
//! `identity` hash, `gzip` minishard indices and `raw` chunk data; an info asking for anything
//! else is rejected when parsed rather than misread later.

use serde::{Deserialize, Serialize};

use crate::precomputed::morton;
use crate::{Error, Result};

/// The `sharding` object of a scale: how chunk ids map to shard files.
///
/// Only the three bit counts vary; the hash (`identity`), the minishard index encoding (`gzip`)
/// and the data encoding (`raw`) are fixed, and serialized as such.
///
/// ```
/// use emwrite::precomputed::sharding::ShardingSpec;
/// let spec = ShardingSpec::new(9, 0, 24)?;
/// assert_eq!(spec.shard_and_minishard(0b1010_0000_0000), (5, 0));
/// assert_eq!(spec.shard_file_name(5), "000005.shard");
/// # Ok::<(), emwrite::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "ShardingJson", into = "ShardingJson")]
pub struct ShardingSpec {
    preshift_bits: u32,
    minishard_bits: u32,
    shard_bits: u32,
}

/// The most minishard bits accepted: the shard index alone is 16 · 2^bits bytes.
const MAX_MINISHARD_BITS: u32 = 32;

impl ShardingSpec {
    /// A spec with the given bit counts.
    ///
    /// Fails if `preshift_bits` exceeds 64, `minishard_bits` exceeds 32 (the shard index is
    /// 16 · 2^minishard_bits bytes) or `minishard_bits + shard_bits` exceeds 64.
    pub fn new(preshift_bits: u32, minishard_bits: u32, shard_bits: u32) -> Result<Self> {
        if preshift_bits > u64::BITS {
            return Err(Error::bad_field(
                "sharding.preshift_bits",
                format_args!("{preshift_bits} is more than 64"),
            ));
        }
        if minishard_bits > MAX_MINISHARD_BITS {
            return Err(Error::bad_field(
                "sharding.minishard_bits",
                format_args!("{minishard_bits} is more than {MAX_MINISHARD_BITS}"),
            ));
        }
        if minishard_bits + shard_bits > u64::BITS {
            return Err(Error::bad_field(
                "sharding.shard_bits",
                format_args!("{shard_bits} + {minishard_bits} minishard bits is more than 64"),
            ));
        }
        Ok(Self {
            preshift_bits,
            minishard_bits,
            shard_bits,
        })
    }

    /// Low bits of a chunk id dropped before hashing.
    pub fn preshift_bits(&self) -> u32 {
        self.preshift_bits
    }

    /// Bits of the hashed id that select the minishard within a shard.
    pub fn minishard_bits(&self) -> u32 {
        self.minishard_bits
    }

    /// Bits of the hashed id, above the minishard bits, that select the shard.
    pub fn shard_bits(&self) -> u32 {
        self.shard_bits
    }

    /// Number of minishards per shard, 2^minishard_bits.
    pub fn minishard_count(&self) -> u64 {
        1 << self.minishard_bits
    }

    /// The `(shard, minishard)` that hold chunk `chunk_id`.
    ///
    /// With the identity hash, `h = chunk_id >> preshift_bits`; the minishard is the low
    /// `minishard_bits` of `h` and the shard the next `shard_bits`.
    pub fn shard_and_minishard(&self, chunk_id: u64) -> (u64, u64) {
        let hashed = chunk_id.checked_shr(self.preshift_bits).unwrap_or(0);
        let minishard = hashed & low_bits_mask(self.minishard_bits);
        let shard =
            hashed.checked_shr(self.minishard_bits).unwrap_or(0) & low_bits_mask(self.shard_bits);
        (shard, minishard)
    }

    /// The file name of shard `shard`: lowercase hex, zero-padded to `ceil(shard_bits / 4)`
    /// digits, with a `.shard` suffix (`0.shard` when `shard_bits` is 0).
    ///
    /// ```
    /// use emwrite::precomputed::sharding::ShardingSpec;
    /// let spec = ShardingSpec::new(0, 0, 21)?;
    /// assert_eq!(spec.shard_file_name(0x1a), "00001a.shard");
    /// # Ok::<(), emwrite::Error>(())
    /// ```
    pub fn shard_file_name(&self, shard: u64) -> String {
        let digits = self.shard_bits.div_ceil(4) as usize;
        format!("{shard:0digits$x}.shard")
    }

    /// Checks that every shard holding a chunk of a block lies inside the block, so that the task
    /// writing the block owns whole shards. The block is `cells[axis]` cells along each axis from
    /// `first_cell`, in a chunk grid of `grid` cells.
    ///
    /// A shard is the set of ids sharing the bits above the low `preshift + minishard` bits. In a
    /// compressed Morton id those low bits are the low bits of each axis's cell index
    /// ([`morton::low_bits_per_axis`]), so a shard is an aligned box of 2^low cells per axis
    /// (clipped to the grid); it must not reach past the block on any axis.
    ///
    /// ```
    /// use emwrite::precomputed::sharding::ShardingSpec;
    /// // 3 preshift bits: shards of 2×2×2 cells.
    /// let spec = ShardingSpec::new(3, 0, 21)?;
    /// assert!(spec.check_block_owns_its_shards([8; 3], [2, 4, 6], [2; 3]).is_ok());
    /// assert!(spec.check_block_owns_its_shards([8; 3], [1, 4, 6], [2; 3]).is_err());
    /// // A block deeper than wide holds a stack of whole shards.
    /// assert!(spec.check_block_owns_its_shards([8; 3], [2, 4, 0], [2, 2, 8]).is_ok());
    /// # Ok::<(), emwrite::Error>(())
    /// ```
    pub fn check_block_owns_its_shards(
        &self,
        grid: [u64; 3],
        first_cell: [u64; 3],
        cells: [u64; 3],
    ) -> Result<()> {
        if (0..3).any(|axis| first_cell[axis] >= grid[axis]) {
            // The block holds no chunk of this grid.
            return Ok(());
        }
        let low_bits = morton::low_bits_per_axis(
            morton::bits_per_axis(grid),
            self.preshift_bits + self.minishard_bits,
        );
        for (axis, name) in ["x", "y", "z"].into_iter().enumerate() {
            let start = first_cell[axis];
            let span = 1u64.checked_shl(low_bits[axis]).unwrap_or(u64::MAX);
            let shard_start = start - start % span;
            let shard_end = shard_start.saturating_add(span).min(grid[axis]);
            let block_end = start.saturating_add(cells[axis]);
            if shard_start < start || shard_end > block_end {
                return Err(Error::internal(format_args!(
                    "a shard spans cells [{shard_start}, {shard_end}) along {name}, beyond the \
                     block's [{start}, {block_end}), so block tasks would overwrite each other's \
                     shards"
                )));
            }
        }
        Ok(())
    }
}

fn low_bits_mask(bits: u32) -> u64 {
    1u64.checked_shl(bits).map_or(u64::MAX, |bit| bit - 1)
}

/// The `sharding` object as it appears in an info file, before validation.
#[derive(Serialize, Deserialize)]
struct ShardingJson {
    #[serde(rename = "@type")]
    type_: String,
    hash: String,
    preshift_bits: u32,
    minishard_bits: u32,
    shard_bits: u32,
    // sharded.md: both encodings default to "raw" when absent.
    #[serde(default = "raw")]
    minishard_index_encoding: String,
    #[serde(default = "raw")]
    data_encoding: String,
}

const SHARDING_TYPE: &str = "neuroglancer_uint64_sharded_v1";

fn identity() -> String {
    "identity".to_owned()
}

fn raw() -> String {
    "raw".to_owned()
}

/// Checks an info string field that emwrite supports with one value only; `field` names it.
pub(crate) fn expect(field: &str, got: &str, want: &str) -> Result<()> {
    if got == want {
        Ok(())
    } else {
        Err(Error::bad_field(
            field,
            format_args!("{got:?} is not supported, emwrite handles only {want:?}"),
        ))
    }
}

impl TryFrom<ShardingJson> for ShardingSpec {
    type Error = Error;

    fn try_from(json: ShardingJson) -> Result<Self> {
        expect("sharding.@type", &json.type_, SHARDING_TYPE)?;
        expect("sharding.hash", &json.hash, "identity")?;
        expect(
            "sharding.minishard_index_encoding",
            &json.minishard_index_encoding,
            "gzip",
        )?;
        expect("sharding.data_encoding", &json.data_encoding, "raw")?;
        Self::new(json.preshift_bits, json.minishard_bits, json.shard_bits)
    }
}

impl From<ShardingSpec> for ShardingJson {
    fn from(spec: ShardingSpec) -> Self {
        Self {
            type_: SHARDING_TYPE.to_owned(),
            hash: identity(),
            preshift_bits: spec.preshift_bits,
            minishard_bits: spec.minishard_bits,
            shard_bits: spec.shard_bits,
            // gzip, not zlib: sharded.md's "gzip" is an RFC 1952 stream (see shard.rs).
            minishard_index_encoding: "gzip".to_owned(),
            data_encoding: raw(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_names_are_zero_padded_lowercase_hex() {
        let cases: [(u32, u64, &str); 7] = [
            (0, 0, "0.shard"),           // no shard bits: one shard, no padding
            (1, 1, "1.shard"),           // ceil(1 / 4) = 1 digit
            (4, 0xf, "f.shard"),         // 1 digit
            (5, 0x1f, "1f.shard"),       // ceil(5 / 4) = 2 digits
            (21, 0x1a, "00001a.shard"),  // emwrite scales 1–4: 6 digits
            (24, 0xabc, "000abc.shard"), // emwrite scale 0: 6 digits
            (64, u64::MAX, "ffffffffffffffff.shard"),
        ];
        for (shard_bits, shard, name) in cases {
            let spec = ShardingSpec::new(0, 0, shard_bits).expect("valid spec");
            assert_eq!(spec.shard_file_name(shard), name, "shard_bits {shard_bits}");
        }
    }

    #[test]
    fn shard_and_minishard_split_the_hashed_id() {
        let spec = ShardingSpec::new(2, 3, 4).expect("valid spec");
        // id = shard 0b1011, minishard 0b101, preshift 0b11; bits above are masked off.
        let id = (0b1_1011 << 5) | (0b101 << 2) | 0b11;
        assert_eq!(spec.shard_and_minishard(id), (0b1011, 0b101));
        assert_eq!(spec.minishard_count(), 8);

        let everything_preshifted = ShardingSpec::new(64, 0, 0).expect("valid spec");
        assert_eq!(everything_preshifted.shard_and_minishard(u64::MAX), (0, 0));
        let all_shard = ShardingSpec::new(0, 0, 64).expect("valid spec");
        assert_eq!(all_shard.shard_and_minishard(u64::MAX), (u64::MAX, 0));
    }

    #[test]
    fn bad_bit_counts_are_rejected() {
        assert!(ShardingSpec::new(65, 0, 0).is_err());
        assert!(ShardingSpec::new(0, 33, 0).is_err());
        let e = ShardingSpec::new(0, 10, 55).expect_err("65 bits");
        assert!(e.message().contains("sharding.shard_bits"), "{e}");
    }

    #[test]
    fn json_uses_the_spec_field_names() {
        let spec = ShardingSpec::new(9, 0, 24).expect("valid spec");
        let json = serde_json::to_value(spec).expect("serializes");
        assert_eq!(
            json,
            serde_json::json!({
                "@type": "neuroglancer_uint64_sharded_v1",
                "hash": "identity",
                "preshift_bits": 9,
                "minishard_bits": 0,
                "shard_bits": 24,
                "minishard_index_encoding": "gzip",
                "data_encoding": "raw",
            })
        );
        let back: ShardingSpec = serde_json::from_value(json).expect("parses");
        assert_eq!(back, spec);
    }

    #[test]
    fn unsupported_hash_and_encodings_are_rejected_by_name() {
        let base = serde_json::json!({
            "@type": "neuroglancer_uint64_sharded_v1",
            "hash": "identity",
            "preshift_bits": 9,
            "minishard_bits": 0,
            "shard_bits": 24,
            "minishard_index_encoding": "gzip",
            "data_encoding": "raw",
        });
        let cases = [
            ("hash", "murmurhash3_x86_128", "sharding.hash"),
            (
                "minishard_index_encoding",
                "raw",
                "sharding.minishard_index_encoding",
            ),
            ("data_encoding", "gzip", "sharding.data_encoding"),
            ("@type", "neuroglancer_uint64_sharded_v2", "sharding.@type"),
        ];
        for (field, value, message) in cases {
            let mut json = base.clone();
            json[field] = value.into();
            let e = serde_json::from_value::<ShardingSpec>(json).expect_err(field);
            assert!(e.to_string().contains(message), "{e}");
            assert!(e.to_string().contains(value), "{e}");
        }
        // An absent minishard_index_encoding means "raw" (sharded.md), which we do not read.
        let mut json = base;
        json.as_object_mut()
            .expect("object")
            .remove("minishard_index_encoding");
        assert!(serde_json::from_value::<ShardingSpec>(json).is_err());
    }
}
