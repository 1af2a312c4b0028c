use crate::EncodingError;
use crate::encoder::{AlignedBlock, Component};
use crate::huffman::{CodingClass, HuffmanTable};
use crate::marker::{Marker, SOFType};
use crate::quantization::QuantizationTable;

/// Represents the pixel density of an image
///
/// For example, a 300 DPI image is represented by:
///
/// ```rust
/// # use jpeg_encoder::{PixelDensity, PixelDensityUnit};
/// let hdpi = PixelDensity::dpi(300);
/// assert_eq!(hdpi, PixelDensity {density: (300,300), unit: PixelDensityUnit::Inches})
/// ```
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct PixelDensity {
    /// A couple of values for (Xdensity, Ydensity)
    pub density: (u16, u16),
    /// The unit in which the density is measured
    pub unit: PixelDensityUnit,
}

impl PixelDensity {
    /// Creates the most common pixel density type:
    /// the horizontal and the vertical density are equal,
    /// and measured in pixels per inch.
    #[must_use]
    pub fn dpi(density: u16) -> Self {
        PixelDensity {
            density: (density, density),
            unit: PixelDensityUnit::Inches,
        }
    }
}

impl Default for PixelDensity {
    /// Returns a pixel density with a pixel aspect ratio of 1
    fn default() -> Self {
        PixelDensity {
            density: (1, 1),
            unit: PixelDensityUnit::PixelAspectRatio,
        }
    }
}

/// Represents a unit in which the density of an image is measured
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum PixelDensityUnit {
    /// Represents the absence of a unit, the values indicate only a
    /// [pixel aspect ratio](https://en.wikipedia.org/wiki/Pixel_aspect_ratio)
    PixelAspectRatio,

    /// Pixels per inch (2.54 cm)
    Inches,

    /// Pixels per centimeter
    Centimeters,
}

/// Zig-zag sequence of quantized DCT coefficients
///
/// Figure A.6
pub static ZIGZAG: [u8; 64] = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20,
    13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59,
    52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
];

// 64 bits on every target: 32-bit targets (wasm32) would otherwise flush twice as often, and the
// bytes written do not depend on the buffer's size.
const BUFFER_SIZE: usize = 64;

/// A no_std alternative for `std::io::Write`
///
/// An implementation of a subset of `std::io::Write` necessary to use the encoder without `std`.
/// This trait is implemented for `std::io::Write` if the `std` feature is enabled.
pub trait JfifWrite {
    /// Writes the whole buffer. The behavior must be identical to std::io::Write::write_all
    /// # Errors
    ///
    /// Return an error if the data can't be written
    fn write_all(&mut self, buf: &[u8]) -> Result<(), EncodingError>;
}

#[cfg(not(feature = "std"))]
impl<W: JfifWrite + ?Sized> JfifWrite for &mut W {
    fn write_all(&mut self, buf: &[u8]) -> Result<(), EncodingError> {
        (**self).write_all(buf)
    }
}

#[cfg(not(feature = "std"))]
impl JfifWrite for alloc::vec::Vec<u8> {
    fn write_all(&mut self, buf: &[u8]) -> Result<(), EncodingError> {
        self.extend_from_slice(buf);
        Ok(())
    }
}

#[cfg(feature = "std")]
impl<W: std::io::Write + ?Sized> JfifWrite for W {
    #[inline(always)]
    fn write_all(&mut self, buf: &[u8]) -> Result<(), EncodingError> {
        self.write_all(buf)?;
        Ok(())
    }
}

pub(crate) struct JfifWriter<W: JfifWrite> {
    w: W,
    bit_buffer: u64,
    free_bits: i32,
}

impl<W: JfifWrite> JfifWriter<W> {
    /// The output, once everything is written (emwrite's patch, for `LumaRowEncoder::finish`).
    pub fn into_inner(self) -> W {
        self.w
    }

    pub fn new(w: W) -> Self {
        JfifWriter {
            w,
            bit_buffer: 0,
            free_bits: BUFFER_SIZE as i32,
        }
    }

    #[inline(always)]
    pub fn write(&mut self, buf: &[u8]) -> Result<(), EncodingError> {
        self.w.write_all(buf)
    }

    #[inline(always)]
    pub fn write_u8(&mut self, value: u8) -> Result<(), EncodingError> {
        self.w.write_all(&[value])
    }

    #[inline(always)]
    pub fn write_u16(&mut self, value: u16) -> Result<(), EncodingError> {
        self.w.write_all(&value.to_be_bytes())
    }

    pub fn finalize_bit_buffer(&mut self) -> Result<(), EncodingError> {
        self.write_bits(0x7F, 7)?;
        self.flush_bit_buffer()?;
        self.bit_buffer = 0;
        self.free_bits = BUFFER_SIZE as i32;

        Ok(())
    }

    pub fn flush_bit_buffer(&mut self) -> Result<(), EncodingError> {
        while self.free_bits <= (BUFFER_SIZE as i32 - 8) {
            self.flush_byte_from_bit_buffer(self.free_bits)?;
            self.free_bits += 8;
        }

        Ok(())
    }

    #[inline(always)]
    fn flush_byte_from_bit_buffer(&mut self, free_bits: i32) -> Result<(), EncodingError> {
        let value = (self.bit_buffer >> (BUFFER_SIZE as i32 - 8 - free_bits)) & 0xFF;

        self.write_u8(value as u8)?;

        if value == 0xFF {
            self.write_u8(0x00)?;
        }

        Ok(())
    }

    #[inline(always)]
    fn write_bit_buffer(&mut self) -> Result<(), EncodingError> {
        if (self.bit_buffer
            & 0x8080808080808080
            & !(self.bit_buffer.wrapping_add(0x0101010101010101)))
            != 0
        {
            self.write_bit_buffer_stuffed()
        } else {
            self.w.write_all(&self.bit_buffer.to_be_bytes())
        }
    }

    /// The full buffer holds a 0xFF byte, which needs a 0x00 after it: byte by byte, out of the
    /// line so that the common case stays small.
    #[cold]
    #[inline(never)]
    fn write_bit_buffer_stuffed(&mut self) -> Result<(), EncodingError> {
        for i in 0..(BUFFER_SIZE / 8) {
            self.flush_byte_from_bit_buffer((i * 8) as i32)?;
        }
        Ok(())
    }

    #[inline(always)]
    pub fn write_bits(&mut self, value: u32, size: u8) -> Result<(), EncodingError> {
        let size = i32::from(size);
        let value = value as u64;

        let free_bits = self.free_bits - size;

        if free_bits < 0 {
            self.bit_buffer = (self.bit_buffer << (size + free_bits)) | (value >> -free_bits);
            self.write_bit_buffer()?;
            self.bit_buffer = value;
            self.free_bits = free_bits + BUFFER_SIZE as i32;
        } else {
            self.free_bits = free_bits;
            self.bit_buffer = (self.bit_buffer << size) | value;
        }
        Ok(())
    }

    pub fn write_marker(&mut self, marker: Marker) -> Result<(), EncodingError> {
        self.write(&[0xFF, marker.into()])
    }

    pub fn write_segment(&mut self, marker: Marker, data: &[u8]) -> Result<(), EncodingError> {
        self.write_marker(marker)?;
        self.write_u16(data.len() as u16 + 2)?;
        self.write(data)?;

        Ok(())
    }

    pub fn write_header(&mut self, density: &PixelDensity) -> Result<(), EncodingError> {
        self.write_marker(Marker::APP(0))?;
        self.write_u16(16)?;

        self.write(b"JFIF\0")?;
        self.write(&[0x01, 0x02])?;

        match density.unit {
            PixelDensityUnit::PixelAspectRatio => {
                self.write_u8(0x00)?;
            }
            PixelDensityUnit::Inches => {
                self.write_u8(0x01)?;
            }
            PixelDensityUnit::Centimeters => {
                self.write_u8(0x02)?;
            }
        }
        let (x, y) = density.density;
        self.write_u16(x)?;
        self.write_u16(y)?;

        self.write(&[0x00, 0x00])
    }

    /// Append huffman table segment
    ///
    /// - `class`: 0 for DC or 1 for AC
    /// - `dest`: 0 for luma or 1 for chroma tables
    ///
    /// Layout:
    /// ```txt
    /// |--------|---------------|--------------------------|--------------------|--------|
    /// | 0xFFC4 | 16 bit length | 4 bit class / 4 bit dest |  16 byte num codes | values |
    /// |--------|---------------|--------------------------|--------------------|--------|
    /// ```
    ///
    pub fn write_huffman_segment(
        &mut self,
        class: CodingClass,
        destination: u8,
        table: &HuffmanTable,
    ) -> Result<(), EncodingError> {
        assert!(destination < 4, "Bad destination: {}", destination);

        self.write_marker(Marker::DHT)?;
        self.write_u16(2 + 1 + 16 + table.values().len() as u16)?;

        self.write_u8(((class as u8) << 4) | destination)?;
        self.write(table.length())?;
        self.write(table.values())?;

        Ok(())
    }

    /// Append a quantization table
    ///
    /// - `precision`: 0 which means 1 byte per value.
    /// - `dest`: 0 for luma or 1 for chroma tables
    ///
    /// Layout:
    /// ```txt
    /// |--------|---------------|------------------------------|--------|--------|-----|--------|
    /// | 0xFFDB | 16 bit length | 4 bit precision / 4 bit dest | V(0,0) | V(0,1) | ... | V(7,7) |
    /// |--------|---------------|------------------------------|--------|--------|-----|--------|
    /// ```
    ///
    pub fn write_quantization_segment(
        &mut self,
        destination: u8,
        table: &QuantizationTable,
    ) -> Result<(), EncodingError> {
        assert!(destination < 4, "Bad destination: {}", destination);

        self.write_marker(Marker::DQT)?;
        self.write_u16(2 + 1 + 64)?;

        self.write_u8(destination)?;

        for &v in ZIGZAG.iter() {
            self.write_u8(table.get(v as usize))?;
        }

        Ok(())
    }

    pub fn write_dri(&mut self, restart_interval: u16) -> Result<(), EncodingError> {
        self.write_marker(Marker::DRI)?;
        self.write_u16(4)?;
        self.write_u16(restart_interval)
    }

    #[inline]
    pub fn huffman_encode(&mut self, val: u8, table: &HuffmanTable) -> Result<(), EncodingError> {
        let &(size, code) = table.get_for_value(val);
        self.write_bits(code as u32, size)
    }

    #[inline]
    pub fn huffman_encode_value(
        &mut self,
        size: u8,
        symbol: u8,
        value: u16,
        table: &HuffmanTable,
    ) -> Result<(), EncodingError> {
        let &(num_bits, code) = table.get_for_value(symbol);

        let mut temp = value as u32;
        temp |= (code as u32) << size;
        let size = size + num_bits;

        self.write_bits(temp, size)
    }

    pub fn write_block(
        &mut self,
        block: &AlignedBlock,
        prev_dc: i16,
        dc_table: &HuffmanTable,
        ac_table: &HuffmanTable,
    ) -> Result<(), EncodingError> {
        self.write_dc(block.data[0], prev_dc, dc_table)?;
        self.write_ac_block(block, 1, 64, ac_table)
    }

    pub fn write_dc(
        &mut self,
        value: i16,
        prev_dc: i16,
        dc_table: &HuffmanTable,
    ) -> Result<(), EncodingError> {
        let diff = value - prev_dc;
        let (size, value) = get_code(diff);

        self.huffman_encode_value(size, size, value, dc_table)?;

        Ok(())
    }

    pub fn write_ac_block(
        &mut self,
        block: &AlignedBlock,
        start: usize,
        end: usize,
        ac_table: &HuffmanTable,
    ) -> Result<(), EncodingError> {
        // Visit only the non-zero coefficients: most of a quantised block is zero, and a
        // bit per coefficient turns the runs of zeros into trailing-zero counts.
        let in_range = (u64::MAX >> (64 - (end - start))) << start;
        let mut nonzero = nonzero_mask(&block.data) & in_range;
        let mut next = start;

        while nonzero != 0 {
            let index = nonzero.trailing_zeros() as usize;
            nonzero &= nonzero - 1;

            let mut zero_run = index - next;
            while zero_run > 15 {
                self.huffman_encode(0xF0, ac_table)?;
                zero_run -= 16;
            }

            let (size, value) = get_code(block.data[index]);
            let symbol = ((zero_run as u8) << 4) | size;

            self.huffman_encode_value(size, symbol, value, ac_table)?;

            next = index + 1;
        }

        if next < end {
            self.huffman_encode(0x00, ac_table)?;
        }

        Ok(())
    }

    pub fn write_frame_header(
        &mut self,
        width: u16,
        height: u16,
        components: &[Component],
        progressive: bool,
    ) -> Result<(), EncodingError> {
        if progressive {
            self.write_marker(Marker::SOF(SOFType::ProgressiveDCT))?;
        } else {
            self.write_marker(Marker::SOF(SOFType::BaselineDCT))?;
        }

        self.write_u16(2 + 1 + 2 + 2 + 1 + (components.len() as u16) * 3)?;

        // Precision
        self.write_u8(8)?;

        self.write_u16(height)?;
        self.write_u16(width)?;

        self.write_u8(components.len() as u8)?;

        for component in components.iter() {
            self.write_u8(component.id)?;
            self.write_u8(
                (component.horizontal_sampling_factor << 4) | component.vertical_sampling_factor,
            )?;
            self.write_u8(component.quantization_table)?;
        }

        Ok(())
    }

    pub fn write_scan_header(
        &mut self,
        components: &[&Component],
        spectral: Option<(u8, u8)>,
    ) -> Result<(), EncodingError> {
        self.write_marker(Marker::SOS)?;

        self.write_u16(2 + 1 + (components.len() as u16) * 2 + 3)?;

        self.write_u8(components.len() as u8)?;

        for component in components.iter() {
            self.write_u8(component.id)?;
            self.write_u8((component.dc_huffman_table << 4) | component.ac_huffman_table)?;
        }

        let (spectral_start, spectral_end) = spectral.unwrap_or((0, 63));

        // Start of spectral or predictor selection
        self.write_u8(spectral_start)?;

        // End of spectral selection
        self.write_u8(spectral_end)?;

        // Successive approximation bit position high and low
        self.write_u8(0)?;

        Ok(())
    }
}

/// Bit `i` is set when `data[i]` is not zero.
#[inline(always)]
pub(crate) fn nonzero_mask(data: &[i16; 64]) -> u64 {
    #[cfg(all(feature = "simd", target_arch = "wasm32", target_feature = "simd128"))]
    return crate::wasm32::nonzero_mask(data);

    #[cfg(not(all(feature = "simd", target_arch = "wasm32", target_feature = "simd128")))]
    nonzero_mask_scalar(data)
}

#[cfg_attr(
    all(feature = "simd", target_arch = "wasm32", target_feature = "simd128"),
    allow(dead_code, reason = "the simd128 build uses it in tests only")
)]
#[inline(always)]
pub(crate) fn nonzero_mask_scalar(data: &[i16; 64]) -> u64 {
    data.iter()
        .enumerate()
        .fold(0, |mask, (i, &value)| mask | (u64::from(value != 0) << i))
}

#[inline]
pub(crate) fn get_code(value: i16) -> (u8, u16) {
    let temp = value - (value.is_negative() as i16);
    let temp2 = value.abs();

    /*
     * Doing this instead of 16 - temp2.leading_zeros()
     * Gives the compiler the information that leadings_zeros
     * is always called on a non zero value, which removes a branch on x86
     */
    let num_bits = 15 - (temp2 << 1 | 1).leading_zeros() as u16;

    let coefficient = temp & ((1 << num_bits as usize) - 1);

    (num_bits as u8, coefficient as u16)
}

#[cfg(test)]
mod tests {
    use alloc::vec::Vec;

    use super::{JfifWriter, get_code};
    use crate::encoder::AlignedBlock;
    use crate::huffman::HuffmanTable;

    /// jpeg-encoder 0.7.1's `write_ac_block`, which visits every coefficient: the reference for
    /// the version that jumps from non-zero to non-zero.
    fn write_ac_block_reference(
        writer: &mut JfifWriter<&mut Vec<u8>>,
        block: &AlignedBlock,
        start: usize,
        end: usize,
        ac_table: &HuffmanTable,
    ) {
        let mut zero_run = 0;
        for &value in &block.data[start..end] {
            if value == 0 {
                zero_run += 1;
            } else {
                while zero_run > 15 {
                    writer.huffman_encode(0xF0, ac_table).unwrap();
                    zero_run -= 16;
                }
                let (size, value) = get_code(value);
                let symbol = (zero_run << 4) | size;
                writer
                    .huffman_encode_value(size, symbol, value, ac_table)
                    .unwrap();
                zero_run = 0;
            }
        }
        if zero_run > 0 {
            writer.huffman_encode(0x00, ac_table).unwrap();
        }
    }

    /// xorshift64: reproducible blocks without a dependency.
    fn next(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    /// Sparse blocks as quantisation leaves them: runs of zeros longer than 16, coefficients at
    /// both ends, every magnitude class, and the empty block.
    fn sparse_blocks() -> Vec<AlignedBlock> {
        let mut state = 0x9E37_79B9_7F4A_7C15;
        let mut blocks = alloc::vec![AlignedBlock::default()];
        for density in [1, 3, 8, 20, 64] {
            for _ in 0..400 {
                let mut block = AlignedBlock::default();
                for value in &mut block.data {
                    let draw = next(&mut state);
                    if draw % 64 < density {
                        let magnitude = ((draw >> 8) % 2047 + 1) as i16 >> ((draw >> 20) % 11);
                        *value = if draw & (1 << 40) == 0 {
                            magnitude.max(1)
                        } else {
                            -magnitude.max(1)
                        };
                    }
                }
                blocks.push(block);
            }
        }
        let mut last_only = AlignedBlock::default();
        last_only.data[63] = -1;
        blocks.push(last_only);
        blocks
    }

    #[test]
    fn ac_blocks_encode_as_the_reference_does() {
        let table = HuffmanTable::default_luma_ac();
        let ranges = [(1, 64), (1, 6), (6, 64), (1, 2), (63, 64), (20, 40)];
        for (start, end) in ranges {
            let (mut expected, mut actual) = (Vec::new(), Vec::new());
            let mut reference = JfifWriter::new(&mut expected);
            let mut writer = JfifWriter::new(&mut actual);
            for block in sparse_blocks() {
                write_ac_block_reference(&mut reference, &block, start, end, &table);
                writer.write_ac_block(&block, start, end, &table).unwrap();
            }
            reference.finalize_bit_buffer().unwrap();
            writer.finalize_bit_buffer().unwrap();
            assert!(
                expected == actual,
                "AC coefficients {start}..{end} encode differently"
            );
        }
    }

    #[test]
    fn the_scalar_nonzero_mask_marks_each_nonzero_coefficient() {
        for block in sparse_blocks() {
            let mask = super::nonzero_mask_scalar(&block.data);
            for (i, &value) in block.data.iter().enumerate() {
                assert_eq!(mask >> i & 1 == 1, value != 0);
            }
            assert_eq!(super::nonzero_mask(&block.data), mask);
        }
    }
}
