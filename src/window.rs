//! The intensity window that maps a 16-bit slice to the 8 bits the volume holds.
//!
//! Detectors and light-microscopy stacks give 16-bit grey; Neuroglancer's JPEG volume and the
//! original's pipeline hold 8 bits. A request's `window: [low, high]` names the values that map
//! to 0 and 255; values between map linearly, rounded half up, and values outside are clamped
//! (docs/design.md §4 "alignedslice"). The mapping is exact integer arithmetic, so a reader can
//! repeat it (numpy: `np.clip((510 * (v - low) + (high - low)) // (2 * (high - low)), 0, 255)`
//! over int64) and get the same bytes. After the window the slice is an 8-bit slice like any
//! other: resampled, encoded and packed unchanged.

use crate::request::wire::WINDOW;
use crate::{Error, Result};

/// `[low, high]`: `low` and below map to 0, `high` and above to 255.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    low: u16,
    high: u16,
}

impl Window {
    /// The window `[low, high]`; `low` must be below `high` (else a bad `window` field).
    ///
    /// ```
    /// use emwrite::window::Window;
    /// let window = Window::new(1000, 3000).unwrap();
    /// assert_eq!([0, 1000, 2000, 3000, 65535].map(|v| window.map(v)), [0, 0, 128, 255, 255]);
    /// assert!(Window::new(7, 7).is_err());
    /// ```
    pub fn new(low: u64, high: u64) -> Result<Self> {
        let (Ok(low16), Ok(high16)) = (u16::try_from(low), u16::try_from(high)) else {
            return Err(Error::bad_field(
                WINDOW,
                format!("[{low}, {high}]: values must be 16-bit (0 to 65535)"),
            ));
        };
        if low16 >= high16 {
            return Err(Error::bad_field(
                WINDOW,
                format!("[{low}, {high}]: low must be below high"),
            ));
        }
        Ok(Self {
            low: low16,
            high: high16,
        })
    }

    /// `[low, high]`.
    pub fn bounds(self) -> [u16; 2] {
        [self.low, self.high]
    }

    /// The 8-bit value of `value`.
    pub fn map(self, value: u16) -> u8 {
        let (value, low, high) = (u32::from(value), u32::from(self.low), u32::from(self.high));
        if value <= low {
            0
        } else if value >= high {
            u8::MAX
        } else {
            // Round half up: ⌊(255·(v − low) + (high − low)/2) / (high − low)⌋, doubled to stay
            // in integers. At most 510 · 65535 + 65535, well inside u32.
            let span = high - low;
            ((510 * (value - low) + span) / (2 * span)) as u8
        }
    }

    /// [`Window::map`] of every 16-bit value, for mapping whole rows by lookup.
    pub fn table(self) -> Vec<u8> {
        (0..=u16::MAX).map(|v| self.map(v)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_rounds_half_up_and_clamps() {
        let window = Window::new(10, 12).unwrap();
        // 255 · 1/2 = 127.5 rounds up.
        assert_eq!(
            [9, 10, 11, 12, 13].map(|v| window.map(v)),
            [0, 0, 128, 255, 255]
        );
        let full = Window::new(0, 65535).unwrap();
        assert_eq!(full.map(257), 1);
        assert_eq!(full.map(128), 0);
        assert_eq!(full.map(129), 1, "128.5/257 ≥ 0.5");
        let table = full.table();
        assert_eq!(table.len(), 65536);
        assert!(table.windows(2).all(|w| w[0] <= w[1]), "monotonic");
    }

    #[test]
    fn bad_windows_name_the_field() {
        for (low, high) in [(5, 5), (9, 2), (0, 70000)] {
            let e = Window::new(low, high).unwrap_err();
            assert!(e.message().starts_with("window: "), "{e}");
        }
    }
}
