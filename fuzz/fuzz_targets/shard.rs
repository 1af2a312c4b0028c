//! Shard files: the decoder on arbitrary bytes, the minishard index decoder behind it on
//! arbitrary decoded indices, and the encoder and decoder as a round trip.
//!
//! The first input byte picks the mode (low 2 bits) and the sharding spec (the rest); the other
//! bytes are the mode's input.

#![no_main]

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::io::Write;

use emwrite::ErrorKind;
use emwrite::layout::scale_shifts;
use emwrite::precomputed::shard::{ChunkOrder, ShardEncoder, decode_shard};
use emwrite::precomputed::sharding::ShardingSpec;
use libfuzzer_sys::arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;

/// emwrite's specs for scales 0–4 of cubic and of flat voxels (no minishard bits), then two with
/// minishards, which the decoder supports and which spread one shard's chunks over several
/// minishard indices.
fn specs() -> Vec<ShardingSpec> {
    let mut specs: Vec<ShardingSpec> = [[8.0; 3], [8.0, 8.0, 40.0]]
        .into_iter()
        .flat_map(scale_shifts)
        .map(|shift| shift.sharding())
        .collect();
    specs.push(ShardingSpec::new(0, 1, 0).expect("valid spec"));
    specs.push(ShardingSpec::new(2, 2, 3).expect("valid spec"));
    specs
}

/// Decoding succeeds or fails as unreadable input.
fn check_decode(spec: &ShardingSpec, file: &[u8]) {
    if let Err(e) = decode_shard(spec, file) {
        assert_eq!(e.kind(), ErrorKind::UnreadableInput, "{e}");
    }
}

/// A shard whose every minishard index is `index`, gzip-compressed as the format wants: the
/// fuzzer mutates the decoded words (ids, offsets and sizes) instead of failing gzip's CRC.
/// Chunk data is 64 bytes of zeros, which the offsets and sizes may or may not stay inside.
fn with_minishard_index(spec: &ShardingSpec, index: &[u8]) -> Vec<u8> {
    let mut gz = gzip(index);
    let minishards = spec.minishard_count() as usize;
    let data_len = 64u64;
    let mut file = Vec::new();
    for _ in 0..minishards {
        file.extend_from_slice(&data_len.to_le_bytes());
        file.extend_from_slice(&(data_len + gz.len() as u64).to_le_bytes());
    }
    file.resize(file.len() + data_len as usize, 0);
    file.append(&mut gz);
    file
}

/// emwrite's own gzip writer is private; any RFC 1952 stream will do.
fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).expect("writes to a Vec");
    encoder.finish().expect("writes to a Vec")
}

/// Chunks of one shard go in, in any order, and come back out by id.
fn round_trip(spec: &ShardingSpec, bytes: &[u8]) {
    let mut u = Unstructured::new(bytes);
    let Ok(added) = Vec::<(u64, Vec<u8>)>::arbitrary(&mut u) else {
        return;
    };
    let Some(&(first, _)) = added.first() else {
        return;
    };
    let shard = spec.shard_and_minishard(first).0;
    // Minishards by layer, as emwrite writes them, on a 128³ grid: any z bits give a valid file.
    let order = ChunkOrder::by_layer(spec, [7; 3]);
    let mut encoder = ShardEncoder::new(*spec, order, shard);
    let mut want = BTreeMap::new();
    for (id, chunk) in added {
        if spec.shard_and_minishard(id).0 != shard {
            let e = encoder
                .add_chunk(id, &chunk)
                .expect_err("a chunk of another shard");
            assert_eq!(e.kind(), ErrorKind::Internal);
        } else if let Entry::Vacant(slot) = want.entry(id) {
            // A repeated id would be the encoder's error, not a round trip.
            encoder
                .add_chunk(id, &chunk)
                .expect("a chunk of this shard");
            slot.insert(chunk);
        }
    }
    let file = encoder.finish().expect("distinct ids of one shard encode");
    assert_eq!(
        decode_shard(spec, &file).expect("what we wrote decodes"),
        want
    );
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let specs = specs();
    let spec = &specs[usize::from(selector >> 2) % specs.len()];
    match selector & 3 {
        0 => check_decode(spec, rest),
        1 => check_decode(spec, &with_minishard_index(spec, rest)),
        _ => round_trip(spec, rest),
    }
});
