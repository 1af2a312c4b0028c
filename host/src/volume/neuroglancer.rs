//! Neuroglancer links: a viewer URL whose fragment is the viewer's JSON state, showing one
//! precomputed volume as an image layer, centred and zoomed to fit.
//!
//! `emwrite view` prints one for the volume it serves, `emwrite pipeline` one for the volume it
//! wrote; both build it here ([`link`]). The state's keys are Neuroglancer's
//! (`dimensions`, `position`, `crossSectionScale`, `layers`, `layout`); the viewer reads the
//! fragment after `#!` as URI-encoded JSON.

use emwrite::layout;
use emwrite::precomputed::codec::Encoding;
use emwrite::precomputed::info::VolumeInfo;
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use serde_json::json;

/// The public Neuroglancer deployment that `--viewer` defaults to.
pub const DEMO_VIEWER: &str = "https://neuroglancer-demo.appspot.com";

/// Characters escaped in the fragment: those a URL may not hold or that would end it in a
/// terminal or a chat message (`"`, space, brackets, braces). `:` and `/` stay readable, so the
/// volume's `precomputed://…` source can be read (and searched for) in the link.
const FRAGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'[')
    .add(b']')
    .add(b'\\')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// Screen pixels the volume's larger side should span: a cross-section panel of a laptop's
/// browser window shows the whole slice.
const FIT_PIXELS: f64 = 800.0;

/// Where the viewer starts: the voxel size, the volume's centre and how far to zoom out.
#[derive(Clone, Debug, PartialEq)]
pub struct Framing {
    /// Voxel size at scale 0, nm.
    resolution_nm: [f64; 3],
    /// Centre of the middle voxel of the slices' extent, in scale-0 voxels.
    centre: [f64; 3],
    /// Scale-0 voxels per screen pixel.
    cross_section_scale: f64,
}

impl Framing {
    /// The framing of the volume `info` describes: its slices' extent (`realsize`, `realoffset`:
    /// the bbox and the slices, not the block-rounded size) when the info has it, else scale 0.
    pub fn of(info: &VolumeInfo) -> Option<Self> {
        let scale0 = info.scales().first()?;
        let (offset, size) = match (info.realoffset(), info.realsize()) {
            (Some(offset), Some(size)) => (offset.map(|v| v as f64), size),
            _ => (scale0.voxel_offset().map(|v| v as f64), scale0.size()),
        };
        // Neuroglancer positions are continuous: voxel i spans [i, i + 1), its centre is i + 0.5.
        let centre = [0, 1, 2].map(|axis| offset[axis] + (size[axis] / 2) as f64 + 0.5);
        let widest = size[0].max(size[1]) as f64;
        Some(Framing {
            resolution_nm: scale0.resolution_nm(),
            centre,
            cross_section_scale: widest / FIT_PIXELS,
        })
    }

    /// The framing of the JPEG volume a stack makes, computed by the info ngmeta writes for it.
    pub fn of_stack(bbox: [u32; 2], minz: u32, maxz: u32, resolution_nm: [f64; 3]) -> Option<Self> {
        Self::of(&layout::volume_info(bbox, minz, maxz, resolution_nm, Encoding::Jpeg).ok()?)
    }
}

/// The Neuroglancer source of the JPEG volume below `base`, a kvstore URL of the volume's
/// destination (`http://127.0.0.1:8081`, `gs://bucket/prefix`).
pub fn jpeg_source(base: &str) -> String {
    source(&format!(
        "{}/{}",
        base.trim_end_matches('/'),
        layout::volume_prefix(Encoding::Jpeg)
    ))
}

/// The Neuroglancer source of the precomputed volume whose folder (holding its `info`) is at
/// `url` (`http://127.0.0.1:8081`, `gs://bucket/prefix/neuroglancer/jpeg`).
pub fn source(url: &str) -> String {
    format!("precomputed://{}", url.trim_end_matches('/'))
}

/// The Neuroglancer source of the OME-Zarr image below `base`, a kvstore URL of the volume's
/// destination: `zarr3://<base>/ome-zarr/` (Neuroglancer reads its `ome` multiscales).
pub fn zarr_source(base: &str) -> String {
    format!(
        "zarr3://{}/{}/",
        base.trim_end_matches('/'),
        layout::ZARR_FOLDER
    )
}

/// A link to `viewer` (a Neuroglancer deployment's URL) showing `source` as an image layer named
/// `name`, in one cross-section panel; `framing` centres and zooms it (without, the viewer
/// centres the volume itself).
pub fn link(viewer: &str, source: &str, name: &str, framing: Option<&Framing>) -> String {
    let mut state = json!({
        "layers": [{"type": "image", "source": source, "name": name}],
        "selectedLayer": {"layer": name},
        "layout": "xy",
    });
    if let Some(framing) = framing {
        let [x, y, z] = framing.resolution_nm.map(|nm| json!([nm / 1e9, "m"]));
        state["dimensions"] = json!({"x": x, "y": y, "z": z});
        state["position"] = json!(framing.centre);
        state["crossSectionScale"] = json!(framing.cross_section_scale);
    }
    format!(
        "{}/#!{}",
        viewer.trim_end_matches('/'),
        utf8_percent_encode(&state.to_string(), FRAGMENT)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The state a link carries, decoded as the viewer decodes it.
    fn state_of(link: &str) -> serde_json::Value {
        let (_, fragment) = link.split_once("#!").expect("a state fragment");
        let text = percent_encoding::percent_decode_str(fragment)
            .decode_utf8()
            .expect("UTF-8");
        serde_json::from_str(&text).expect("JSON state")
    }

    #[test]
    fn link_centres_the_slices_and_fits_the_wider_side() {
        // 1100 × 300 slices 5..=16: the info's scale 0 is 2048 × 1024 × 1024.
        let framing = Framing::of_stack([1100, 300], 5, 16, [8.0; 3]).expect("five scales");
        let source = jpeg_source("http://127.0.0.1:8081/");
        assert_eq!(
            source,
            "precomputed://http://127.0.0.1:8081/neuroglancer/jpeg"
        );
        let link = link(DEMO_VIEWER, &source, "emdata", Some(&framing));
        assert!(link.starts_with("https://neuroglancer-demo.appspot.com/#!%7B"));
        assert!(link.contains("precomputed://http://127.0.0.1:8081/neuroglancer/jpeg"));
        assert!(!link.contains(['"', ' ', '{', '[']), "{link}");
        let state = state_of(&link);
        assert_eq!(state["layers"][0]["source"], source.as_str());
        assert_eq!(state["layers"][0]["type"], "image");
        assert_eq!(state["dimensions"]["x"], json!([8e-9, "m"]));
        assert_eq!(state["position"], json!([550.5, 150.5, 11.5]));
        assert_eq!(state["crossSectionScale"], json!(1100.0 / FIT_PIXELS));
    }

    #[test]
    fn zarr_source_names_the_image_folder() {
        assert_eq!(
            zarr_source("http://127.0.0.1:8081/"),
            "zarr3://http://127.0.0.1:8081/ome-zarr/"
        );
    }

    #[test]
    fn link_without_framing_leaves_the_view_to_the_viewer() {
        let source = jpeg_source("gs://lab/run1");
        let state = state_of(&link("http://127.0.0.1:9/", &source, "run1", None));
        assert_eq!(
            state["layers"][0]["source"],
            "precomputed://gs://lab/run1/neuroglancer/jpeg"
        );
        assert!(state.get("position").is_none());
    }
}
