//! `emwrite window STACK`: suggests the `window` that maps a 16-bit stack to 8 bits, from the
//! values of a few of its raw slices.
//!
//! A window that clips a little at both ends keeps the contrast of the tissue: the suggestion is
//! the `--percentiles` (0.5 and 99.5 by default) of every pixel of up to `--sample` slices spread
//! evenly through the stack. Nothing is written; the user puts the window into the stack file
//! (`"window": [low, high]`) or passes `--window LOW,HIGH`.

use emwrite::layout::raw_slice_object;
use emwrite::request::wire;
use emwrite::slice_image::value_histogram;
use emwrite::storage::Storage;

use crate::cli::WindowArgs;
use crate::embed::engine::Settings;
use crate::embed::store;
use crate::error::HostError;
use crate::runtime::runtime;

/// Reads the sampled slices and prints the suggested window.
pub fn run(args: WindowArgs) -> Result<(), HostError> {
    let stack = args.stack.read(&args.engine.allow_hosts)?;
    let [low_percent, high_percent] = args.percentiles;
    let settings = Settings::from(args.engine);
    let sampled = sample(stack.slices.len(), args.sample);
    let runtime = runtime(None)?;
    let counts = runtime.block_on(async {
        let store = store::open(&settings)?;
        let mut counts = vec![0u64; 1 << 16];
        for &at in &sampled {
            let object = raw_slice_object(&stack.dest, &stack.slices[at].img);
            let histogram = async { value_histogram(&store.get(&object).await?, &object) };
            let histogram = histogram.await.map_err(|error| HostError::Task {
                context: format!("sampling {object}"),
                error,
            })?;
            for (total, count) in counts.iter_mut().zip(histogram) {
                *total += count;
            }
        }
        Ok::<_, HostError>(counts)
    })?;
    let (low, high) = (
        percentile(&counts, low_percent),
        percentile(&counts, high_percent),
    );
    // A flat sample (every pixel one value) still needs low < high.
    let (low, high) = if low < high {
        (low, high)
    } else {
        (low.min(u16::MAX - 1), low.min(u16::MAX - 1) + 1)
    };
    println!(
        "sampled {} of {} slices; values {low_percent}% ≤ {low}, {high_percent}% ≤ {high}",
        sampled.len(),
        stack.slices.len()
    );
    println!(
        "\"{}\": [{low}, {high}]   (or --window {low},{high})",
        wire::WINDOW
    );
    Ok(())
}

/// Up to `wanted` indices of `0..len`, spread evenly, first and last included.
fn sample(len: usize, wanted: usize) -> Vec<usize> {
    match (len, wanted) {
        (0, _) | (_, 0) => Vec::new(),
        (_, 1) => vec![len / 2],
        _ if wanted >= len => (0..len).collect(),
        _ => (0..wanted).map(|i| i * (len - 1) / (wanted - 1)).collect(),
    }
}

/// The smallest value with at least `percent`% of the counted pixels at or below it.
fn percentile(counts: &[u64], percent: f64) -> u16 {
    let total: u64 = counts.iter().sum();
    let wanted = (total as f64 * percent / 100.0).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (value, &count) in counts.iter().enumerate() {
        seen += count;
        if seen >= wanted {
            return value as u16;
        }
    }
    u16::MAX
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_spread_through_the_stack() {
        assert_eq!(sample(100, 5), [0, 24, 49, 74, 99]);
        assert_eq!(sample(3, 8), [0, 1, 2]);
        assert_eq!(sample(9, 1), [4]);
        assert!(sample(0, 8).is_empty());
    }

    #[test]
    fn percentiles_count_pixels_from_the_dark_end() {
        let mut counts = vec![0u64; 1 << 16];
        counts[100] = 5;
        counts[200] = 990;
        counts[60_000] = 5;
        assert_eq!(percentile(&counts, 0.5), 100);
        assert_eq!(percentile(&counts, 0.6), 200);
        assert_eq!(percentile(&counts, 99.5), 200);
        assert_eq!(percentile(&counts, 100.0), 60_000);
    }
}
