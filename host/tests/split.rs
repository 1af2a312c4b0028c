//! A block as two halves in two instances plus their merge (`--split`) writes exactly the bytes
//! of one instance running the whole block: through `emwrite pipeline`, `emwrite run` and
//! `emwrite serve`.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::serve::Server;

/// Slices on both sides of the halves' cut at z = 512, so each half has voxels to write.
const SLICES: [u32; 4] = [510, 511, 512, 513];

#[test]
fn split_blocks_write_the_bytes_of_whole_blocks() {
    let whole = Workspace::new("whole");
    let split = Workspace::new("split");
    whole.emwrite(
        &["pipeline", "--split", "never", "--jobs", "1"],
        "stack.json",
    );
    split.emwrite(
        &["pipeline", "--split", "always", "--jobs", "2"],
        "stack.json",
    );
    let expected = whole.volume();
    // Both halves' scale-0 shards (z < 512 and z ≥ 512), the merge's coarsest scale, and the
    // block's manifest, which the merge writes listing the halves' shards too.
    for name in [
        "jpeg/8.0x8.0x8.0/000000.shard",
        "jpeg/8.0x8.0x8.0/000004.shard",
        "raw/128.0x128.0x128.0/000000.shard",
        "blocks/0_0_0.json",
    ] {
        assert!(expected.contains_key(name), "{name}: {:?}", expected.keys());
    }
    assert_same_volume(&expected, &split.volume());

    // `run` with the split, over the whole pipeline's output: every object rewritten the same.
    let report = whole.emwrite(&["run", "ngshard", "--split", "always"], "block.json");
    let report: serde_json::Value = serde_json::from_str(&report).expect("run prints JSON");
    assert_eq!(report["status"], "success", "{report}");
    assert!(report["notes"].is_array(), "{report}");
    assert!(report["stages"]["encode_us"].as_u64().is_some(), "{report}");
    assert_eq!(
        report["objects"].as_array().map(Vec::len),
        Some(expected.len()),
        "{report}"
    );
    assert_same_volume(&expected, &whole.volume());
}

#[test]
fn serve_splits_blocks_into_the_bytes_of_whole_blocks() {
    let whole = Workspace::new("serve");
    whole.emwrite(
        &["pipeline", "--split", "never", "--jobs", "1"],
        "stack.json",
    );
    let expected = whole.volume();
    let block = fs::read_to_string(whole.dir.join("block.json")).expect("the request");
    for split in ["always", "never"] {
        let server = Server::start_with_env(&["--split", split], &[]);
        // The raw slices, the tile packs and the infos: what the block reads.
        copy(&whole.dir.join("data"), &server.data(), &|path: &Path| {
            !path.components().any(|c| c.as_os_str() == "neuroglancer")
                || path.extension().is_none() && path.ends_with("info")
                || path.is_dir() && !path.ends_with("blocks")
        });
        let reply = server.post("/ngshard", &block);
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (200, "success"),
            "{}",
            server.log()
        );
        let root = server.data().join("lab/neuroglancer");
        let mut volume = BTreeMap::new();
        collect(&root, &root, &mut volume);
        volume.retain(|name, _| !name.ends_with("/info"));
        assert_same_volume(&expected, &volume);
        assert_eq!(
            server.log().contains("two halves"),
            split == "always",
            "--split {split}: {}",
            server.log()
        );
    }
}

/// Copies what `keep` keeps of `from` into `to`, folders included.
fn copy(from: &Path, to: &Path, keep: &dyn Fn(&Path) -> bool) {
    fs::create_dir_all(to).expect("create a folder");
    for entry in fs::read_dir(from).expect("read a folder") {
        let path = entry.expect("a folder entry").path();
        if !keep(&path) {
            continue;
        }
        let target = to.join(path.file_name().expect("a name"));
        if path.is_dir() {
            copy(&path, &target, keep);
        } else {
            fs::copy(&path, &target).expect("copy a file");
        }
    }
}

fn assert_same_volume(expected: &BTreeMap<String, Vec<u8>>, actual: &BTreeMap<String, Vec<u8>>) {
    assert_eq!(
        expected.keys().collect::<Vec<_>>(),
        actual.keys().collect::<Vec<_>>()
    );
    for (name, bytes) in expected {
        assert!(actual[name] == *bytes, "{name} differs");
    }
}

/// A data directory with four raw slices, a stack file and an ngshard request for its block.
struct Workspace {
    dir: PathBuf,
}

impl Workspace {
    fn new(name: &str) -> Workspace {
        let dir = std::env::temp_dir().join(format!("emwrite-split-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let raw = dir.join("data/lab/raw");
        fs::create_dir_all(&raw).expect("create the raw folder");
        let mut slices = Vec::new();
        for z in SLICES {
            let image = image::GrayImage::from_fn(70, 50, |x, y| {
                image::Luma([(x * 3 + y * 2 + z * 7) as u8])
            });
            image
                .save(raw.join(format!("s{z}.png")))
                .expect("write a raw PNG");
            slices.push(serde_json::json!({
                "z": z, "img": format!("s{z}.png"), "transform": [1, 0, 0, 1, 4, 3]
            }));
        }
        let stack = serde_json::json!({
            "dest": "lab", "dest-tmp": "lab-tmp", "bbox": [80, 60], "writeRaw": true,
            "slices": slices,
        });
        fs::write(dir.join("stack.json"), stack.to_string()).expect("write the stack");
        let block = serde_json::json!({
            "dest": "lab", "source": "lab-tmp", "start": [0, 0, 0], "minz": SLICES[0],
            "maxz": SLICES[3], "bbox": [80, 60], "writeRaw": true,
        });
        fs::write(dir.join("block.json"), block.to_string()).expect("write the request");
        Workspace { dir }
    }

    /// Runs `emwrite ARGS FILE` on this workspace's data and returns its stdout.
    fn emwrite(&self, args: &[&str], file: &str) -> String {
        let output = Command::new(env!("CARGO_BIN_EXE_emwrite"))
            .env_remove("EMWRITE_STORE")
            .env_remove("STORAGE_EMULATOR_HOST")
            .args(args)
            .arg(self.dir.join(file))
            .arg("--data-dir")
            .arg(self.dir.join("data"))
            .output()
            .expect("run emwrite");
        assert!(
            output.status.success(),
            "emwrite {args:?} failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("UTF-8 output")
    }

    /// Every object under `lab/neuroglancer/` except the info files, by name.
    fn volume(&self) -> BTreeMap<String, Vec<u8>> {
        let root = self.dir.join("data/lab/neuroglancer");
        let mut files = BTreeMap::new();
        collect(&root, &root, &mut files);
        files.retain(|name, _| !name.ends_with("/info"));
        files
    }
}

impl Drop for Workspace {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn collect(root: &Path, dir: &Path, files: &mut BTreeMap<String, Vec<u8>>) {
    for entry in fs::read_dir(dir).expect("read a volume folder") {
        let path = entry.expect("a folder entry").path();
        if path.is_dir() {
            collect(root, &path, files);
        } else {
            let name = path.strip_prefix(root).expect("below the root");
            let bytes = fs::read(&path).expect("read an object");
            files.insert(name.display().to_string(), bytes);
        }
    }
}
