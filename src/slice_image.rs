//! Decoding a raw slice image: 8-bit grayscale PNG, TIFF or JPEG, within a memory limit, or a
//! 16-bit grayscale PNG or TIFF mapped to 8 bits through the request's [`Window`].
//!
//! The original service read slices with Pillow and required 8-bit grayscale (docs/design.md §4
//! "alignedslice"); colour images, and 16-bit ones without a window, are an error naming the
//! object, not a guess.
//!
//! [`SliceRows`] reads a slice band of rows by band, top to bottom: a plain 8-bit grey PNG, or a
//! 16-bit one with a window (not interlaced, no transparency) is fetched in range reads and
//! decoded row by row, keeping
//! only the rows asked for; anything else (TIFF, JPEG, other PNGs, and every error) goes
//! through [`decode_gray`] whole, as before, so results and messages stay the same.

use crate::resample::bicubic::SourceRows;
use crate::storage::Storage;
use crate::storage::location::ObjectPath;
use crate::window::Window;
use crate::{Error, ErrorKind, Result};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{BufRead, Read, Seek, SeekFrom};
use std::ops::Range;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Largest raw slice we decode, in bytes of pixels (the component's memory is capped at 2 GiB
/// by default and holds the raw and the aligned image at once).
pub const MAX_DECODED_BYTES: u64 = 1 << 30;

/// A decoded slice: row-major 8-bit pixels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrayImage {
    /// `width * height` bytes, rows top to bottom.
    pub pixels: Vec<u8>,
    /// Columns.
    pub width: u32,
    /// Rows.
    pub height: u32,
}

/// Decodes `bytes` (the object `what`), which must hold an 8-bit grayscale image.
///
/// ```
/// use emwrite::slice_image::decode_gray;
/// use emwrite::storage::location::Location;
/// let what = Location::parse("dest", "lab").unwrap().object("raw/s1.png");
/// let png = emwrite::tilepack::encode_png(&[0, 255, 7, 9], 2, 2).unwrap();
/// let image = decode_gray(&png, &what).unwrap();
/// assert_eq!((image.width, image.height, image.pixels), (2, 2, vec![0, 255, 7, 9]));
/// assert!(decode_gray(b"not an image", &what).is_err());
/// ```
pub fn decode_gray(bytes: &[u8], what: &ObjectPath) -> Result<GrayImage> {
    decode_windowed(bytes, what, None)
}

/// Decodes `bytes` (the object `what`): an 8-bit grayscale image, or a 16-bit one when a
/// `window` maps it to 8 bits. The window maps an 8-bit image too.
pub fn decode_windowed(
    bytes: &[u8],
    what: &ObjectPath,
    window: Option<Window>,
) -> Result<GrayImage> {
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
    let (width, height) = (image.width(), image.height());
    let pixels = match (image, window) {
        (image::DynamicImage::ImageLuma8(gray), None) => gray.into_raw(),
        (image::DynamicImage::ImageLuma8(gray), Some(window)) => {
            let mut pixels = gray.into_raw();
            pixels
                .iter_mut()
                .for_each(|v| *v = window.map(u16::from(*v)));
            pixels
        }
        (image::DynamicImage::ImageLuma16(gray), Some(window)) => {
            let table = window.table();
            gray.pixels().map(|p| table[usize::from(p.0[0])]).collect()
        }
        (image::DynamicImage::ImageLuma16(_), None) => {
            return Err(Error::unreadable(
                what,
                format!(
                    "expected an 8-bit grayscale image, got L16: give a {}: [low, high] to map \
                     a 16-bit image to 8 bits",
                    crate::request::wire::WINDOW
                ),
            ));
        }
        (other, _) => {
            return Err(Error::unreadable(
                what,
                format!("expected an 8-bit grayscale image, got {:?}", other.color()),
            ));
        }
    };
    Ok(GrayImage {
        pixels,
        width,
        height,
    })
}

/// How many pixels of `bytes` (the object `what`, 8- or 16-bit grey) have each value: 65,536
/// counts, from which a window is chosen (the host's `emwrite window`).
pub fn value_histogram(bytes: &[u8], what: &ObjectPath) -> Result<Vec<u64>> {
    let image = image::load_from_memory(bytes)
        .map_err(|e| Error::unreadable(what, format!("cannot decode image: {e}")))?;
    let mut counts = vec![0u64; 1 << 16];
    match image {
        image::DynamicImage::ImageLuma8(gray) => {
            gray.pixels().for_each(|p| counts[usize::from(p.0[0])] += 1);
        }
        image::DynamicImage::ImageLuma16(gray) => {
            gray.pixels().for_each(|p| counts[usize::from(p.0[0])] += 1);
        }
        other => {
            return Err(Error::unreadable(
                what,
                format!("expected a grayscale image, got {:?}", other.color()),
            ));
        }
    }
    Ok(counts)
}

/// Encoded bytes fetched per range read while decoding progressively: few requests, little
/// memory.
pub const FETCH_BYTES: u64 = 8 << 20;

/// The PNG signature, by which a PNG is recognised.
pub(crate) const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

/// How emwrite's own PNG decoders check what they read (docs/design.md §4): the zlib stream's
/// Adler-32 over the pixels, which the `png` crate skips by default, and not the chunks' CRC-32s
/// over the same compressed bytes. Pillow, which the original service read raw slices with,
/// checks the same: zlib's Adler-32, no CRC of image data. In wasm, with no carry-less
/// multiply, the CRCs cost more than the rest of decoding a stored tile, and about 5% of
/// decoding a raw slice.
pub(crate) fn png_decode_options() -> png::DecodeOptions {
    let mut options = png::DecodeOptions::default();
    options.set_ignore_crc(true);
    options.set_ignore_adler32(false);
    options
}

/// A raw slice read band by band, top to bottom (see the module docs).
pub struct SliceRows {
    width: usize,
    height: usize,
    rows: Rows,
    /// Time spent waiting for the object's bytes (not decoding them) outside the progressive
    /// decoder, which keeps its own.
    waited: Duration,
}

enum Rows {
    /// Every pixel, decoded at once.
    Whole(Vec<u8>),
    /// A PNG decoded as far as the bands asked for so far.
    Progressive(Box<ProgressivePng>),
}

impl SliceRows {
    /// Opens the slice `object`, its values mapped through `window` if given: reads its first
    /// bytes, and its header if it is a PNG; decodes it whole unless it is a PNG that can be
    /// decoded row by row.
    pub async fn open(
        storage: &impl Storage,
        object: &ObjectPath,
        window: Option<Window>,
    ) -> Result<Self> {
        Self::open_fetching(storage, object, window, FETCH_BYTES).await
    }

    /// [`Self::open`], reading `fetch_bytes` at a time.
    async fn open_fetching(
        storage: &impl Storage,
        object: &ObjectPath,
        window: Option<Window>,
        fetch_bytes: u64,
    ) -> Result<Self> {
        let mut wanted = fetch_bytes;
        let mut waited = Duration::ZERO;
        loop {
            let started = Instant::now();
            let head = storage.get_range(object, 0..wanted).await?;
            waited += started.elapsed();
            let complete = (head.len() as u64) < wanted;
            if !head.starts_with(PNG_SIGNATURE) {
                let whole = Self::decode_whole(storage, object, window, head, complete).await?;
                return Ok(whole.having_waited(waited));
            }
            let fetched = head.len() as u64;
            let input = QueuedInput::default();
            // The decoder takes the bytes; a PNG it cannot stream is read again, whole.
            input.push(head);
            match png::Decoder::new_with_options(input.clone(), png_decode_options()).read_info() {
                Ok(reader) if streamable(&reader, window.is_some()) => {
                    let info = reader.info();
                    let (width, height) = (info.width as usize, info.height as usize);
                    let sixteen = info.bit_depth == png::BitDepth::Sixteen;
                    let png = ProgressivePng {
                        window_of_values: window,
                        levels: window.map(Window::table),
                        wide_row: vec![0; if sixteen { 2 * width } else { 0 }],
                        object: object.clone(),
                        input,
                        reader,
                        fetched,
                        fetch_bytes,
                        complete,
                        waited: Duration::ZERO,
                        width,
                        window: Vec::new(),
                        first_row: 0,
                        next_row: 0,
                    };
                    return Ok(Self {
                        width,
                        height,
                        rows: Rows::Progressive(Box::new(png)),
                        waited,
                    });
                }
                // Header chunks longer than what was read: read more.
                Err(png::DecodingError::IoError(e))
                    if e.kind() == std::io::ErrorKind::UnexpectedEof && !complete =>
                {
                    wanted = wanted.saturating_mul(2);
                }
                // Colour, 16-bit, interlaced or broken: the whole-image path says why, as
                // before, or decodes what it can.
                _ => {
                    let whole = Self::decode_whole(storage, object, window, Vec::new(), false);
                    return Ok(whole.await?.having_waited(waited));
                }
            }
        }
    }

    /// Decodes the slice whole, from `head` if it holds all of it.
    async fn decode_whole(
        storage: &impl Storage,
        object: &ObjectPath,
        window: Option<Window>,
        head: Vec<u8>,
        complete: bool,
    ) -> Result<Self> {
        let started = Instant::now();
        let encoded = if complete {
            head
        } else {
            drop(head);
            storage.get(object).await?
        };
        let waited = started.elapsed();
        let image = decode_windowed(&encoded, object, window)?;
        Ok(Self {
            width: image.width as usize,
            height: image.height as usize,
            rows: Rows::Whole(image.pixels),
            waited,
        })
    }

    /// `self`, having also waited `earlier` for bytes before it was made.
    fn having_waited(mut self, earlier: Duration) -> Self {
        self.waited += earlier;
        self
    }

    /// The time spent so far waiting for the slice's bytes, rather than decoding them.
    pub fn read_time(&self) -> Duration {
        match &self.rows {
            Rows::Whole(_) => self.waited,
            Rows::Progressive(png) => self.waited + png.waited,
        }
    }

    /// Columns.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Rows.
    pub fn height(&self) -> usize {
        self.height
    }

    /// Whether rows are decoded as bands ask for them, rather than held whole.
    pub fn is_progressive(&self) -> bool {
        matches!(self.rows, Rows::Progressive(_))
    }

    /// The same slice decoded whole (within [`MAX_DECODED_BYTES`]): for bands that do not move
    /// down the image, which a progressive PNG cannot serve.
    pub async fn into_whole(self, storage: &impl Storage, object: &ObjectPath) -> Result<Self> {
        match self.rows {
            Rows::Whole(_) => Ok(self),
            Rows::Progressive(png) => {
                let (window, waited) = (png.window_of_values, self.waited + png.waited);
                drop(png);
                let whole = Self::decode_whole(storage, object, window, Vec::new(), false);
                Ok(whole.await?.having_waited(waited))
            }
        }
    }

    /// The band of image rows `rows` (clamped to the image). A progressive slice serves bands
    /// top to bottom: a band may not start above the previous one, whose rows above its own
    /// start it forgets.
    pub async fn band(
        &mut self,
        storage: &impl Storage,
        rows: Range<usize>,
    ) -> Result<SourceRows<'_>> {
        let (width, height) = (self.width, self.height);
        let rows = rows.start.min(height)..rows.end.min(height);
        let (pixels, first_row) = match &mut self.rows {
            Rows::Whole(pixels) => (
                pixels
                    .get(rows.start * width..rows.end * width)
                    .unwrap_or_default(),
                rows.start,
            ),
            // A strip that reaches no source row (the bottom of a frame taller than the
            // transformed source) needs no band, and must not move the window back to row 0.
            Rows::Progressive(_) if rows.is_empty() => (&[][..], rows.start),
            Rows::Progressive(png) => {
                png.advance(storage, rows.clone()).await?;
                (png.window.as_slice(), png.first_row)
            }
        };
        Ok(SourceRows {
            pixels,
            first_row,
            width,
            height,
        })
    }
}

/// Whether `reader`'s image decodes row by row to exactly what [`decode_windowed`] gives: 8-bit
/// grey, or 16-bit grey when `windowed`, not interlaced (rows come in passes), no transparency
/// (`image` would make it grey and alpha), a single image.
fn streamable<R: BufRead + Seek>(reader: &png::Reader<R>, windowed: bool) -> bool {
    let info = reader.info();
    let depth = match info.bit_depth {
        png::BitDepth::Eight => png::BitDepth::Eight,
        png::BitDepth::Sixteen if windowed => png::BitDepth::Sixteen,
        _ => return false,
    };
    info.color_type == png::ColorType::Grayscale
        && !info.interlaced
        && info.trns.is_none()
        && info.animation_control.is_none()
        && reader.output_color_type() == (png::ColorType::Grayscale, depth)
}

/// A PNG being decoded row by row, its encoded bytes fetched as the decoder needs them.
struct ProgressivePng {
    object: ObjectPath,
    /// The request's window, kept for [`SliceRows::into_whole`].
    window_of_values: Option<Window>,
    /// The window's 8-bit value of each input value ([`Window::table`]), when there is one.
    levels: Option<Vec<u8>>,
    /// A 16-bit row as decoded (big-endian), before the window; empty for 8-bit images.
    wide_row: Vec<u8>,
    input: QueuedInput,
    reader: png::Reader<QueuedInput>,
    /// Encoded bytes fetched so far.
    fetched: u64,
    /// Encoded bytes fetched at a time.
    fetch_bytes: u64,
    /// Whether the object has no more bytes.
    complete: bool,
    /// Time spent waiting for fetched bytes.
    waited: Duration,
    width: usize,
    /// Decoded rows `first_row .. next_row`.
    window: Vec<u8>,
    first_row: usize,
    next_row: usize,
}

impl ProgressivePng {
    /// Makes the window hold `rows.start .. max(rows.end, next_row)`.
    async fn advance(&mut self, storage: &impl Storage, rows: Range<usize>) -> Result<()> {
        if rows.start < self.first_row {
            return Err(Error::internal(format!(
                "{}: source rows {rows:?} asked for after rows from {} on",
                self.object, self.first_row
            )));
        }
        let w = self.width;
        if rows.start >= self.next_row {
            // Rows no band needs: decode them through a one-row window.
            self.window.clear();
            while self.next_row < rows.start {
                self.window.resize(w, 0);
                self.decode_row(storage, 0).await?;
            }
            self.window.clear();
            self.first_row = self.next_row;
        } else {
            self.window.drain(..(rows.start - self.first_row) * w);
            self.first_row = rows.start;
        }
        while self.next_row < rows.end {
            let at = self.window.len();
            self.window.resize(at + w, 0);
            self.decode_row(storage, at).await?;
        }
        Ok(())
    }

    /// Decodes the next row into `window[at .. at + width]`, fetching bytes as needed.
    async fn decode_row(&mut self, storage: &impl Storage, at: usize) -> Result<()> {
        loop {
            let row = &mut self.window[at..at + self.width];
            let decoded = if self.wide_row.is_empty() {
                self.reader.read_row(row)
            } else {
                self.reader.read_row(&mut self.wide_row)
            };
            match decoded {
                Ok(Some(_)) => {
                    match (&self.levels, self.wide_row.is_empty()) {
                        (Some(levels), false) => {
                            for (out, wide) in row.iter_mut().zip(self.wide_row.chunks_exact(2)) {
                                *out = levels[usize::from(u16::from_be_bytes([wide[0], wide[1]]))];
                            }
                        }
                        (Some(levels), true) => {
                            row.iter_mut().for_each(|v| *v = levels[usize::from(*v)]);
                        }
                        (None, _) => {}
                    }
                    self.next_row += 1;
                    return Ok(());
                }
                Ok(None) => {
                    return Err(Error::unreadable(
                        &self.object,
                        format!("cannot decode image: no row {}", self.next_row),
                    ));
                }
                // png resumes where it stopped once more bytes arrive.
                Err(png::DecodingError::IoError(e))
                    if e.kind() == std::io::ErrorKind::UnexpectedEof && !self.complete =>
                {
                    self.fetch(storage).await?;
                }
                Err(e) => {
                    return Err(Error::unreadable(
                        &self.object,
                        format!("cannot decode image: {e}"),
                    ));
                }
            }
        }
    }

    /// Reads the next bytes of the object for the decoder.
    async fn fetch(&mut self, storage: &impl Storage) -> Result<()> {
        let range = self.fetched..self.fetched + self.fetch_bytes;
        let started = Instant::now();
        let bytes = storage.get_range(&self.object, range).await?;
        self.waited += started.elapsed();
        self.complete = (bytes.len() as u64) < self.fetch_bytes;
        self.fetched += bytes.len() as u64;
        self.input.push(bytes);
        Ok(())
    }
}

/// The decoder's input: byte runs queued by the caller, read in order. Running dry is
/// `UnexpectedEof` to png, which it resumes from once more bytes are queued. The queue is
/// shared because `png::Reader` owns its input and gives no access back to it.
#[derive(Clone, Default)]
struct QueuedInput {
    queue: Rc<RefCell<VecDeque<Vec<u8>>>>,
    /// The run being read, and how far.
    current: Vec<u8>,
    position: usize,
    /// Bytes consumed in all.
    consumed: u64,
}

impl QueuedInput {
    fn push(&self, bytes: Vec<u8>) {
        if !bytes.is_empty() {
            self.queue.borrow_mut().push_back(bytes);
        }
    }
}

impl Read for QueuedInput {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = self.fill_buf()?.read(out)?;
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for QueuedInput {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        if self.position == self.current.len()
            && let Some(next) = self.queue.borrow_mut().pop_front()
        {
            self.current = next;
            self.position = 0;
        }
        Ok(&self.current[self.position..])
    }

    fn consume(&mut self, n: usize) {
        let n = n.min(self.current.len() - self.position);
        self.position += n;
        self.consumed += n as u64;
    }
}

/// png asks for `Seek` but only reads forward; the position is all it can have.
impl Seek for QueuedInput {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        match to {
            SeekFrom::Current(0) => Ok(self.consumed),
            _ => Err(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "the slice is read forward only",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::location::Location;

    fn what() -> ObjectPath {
        Location::parse("dest", "lab").unwrap().object("raw/s1.png")
    }

    #[test]
    fn colour_and_sixteen_bit_images_are_unreadable_and_named() {
        for image in [
            image::DynamicImage::new_rgb8(3, 2),
            image::DynamicImage::new_luma16(3, 2),
        ] {
            let mut png = Vec::new();
            image
                .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
                .unwrap();
            let e = decode_gray(&png, &what()).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::UnreadableInput);
            assert!(
                e.message()
                    .starts_with("raw/s1.png in bucket lab: expected an 8-bit grayscale image"),
                "{e}"
            );
        }
    }

    /// One object in memory, counting the range reads.
    struct OneObject {
        bytes: Vec<u8>,
        reads: std::cell::Cell<u32>,
    }

    impl OneObject {
        fn new(bytes: Vec<u8>) -> Self {
            Self {
                bytes,
                reads: std::cell::Cell::new(0),
            }
        }
    }

    impl Storage for OneObject {
        async fn get(&self, _: &ObjectPath) -> Result<Vec<u8>> {
            self.reads.set(self.reads.get() + 1);
            Ok(self.bytes.clone())
        }

        async fn get_range(&self, _: &ObjectPath, range: Range<u64>) -> Result<Vec<u8>> {
            self.reads.set(self.reads.get() + 1);
            let end = (range.end as usize).min(self.bytes.len());
            let start = (range.start as usize).min(end);
            Ok(self.bytes[start..end].to_vec())
        }

        async fn put(&self, _: &ObjectPath, _: &[u8], _: &str) -> Result<()> {
            unreachable!("slices are only read")
        }
    }

    fn noise(w: usize, h: usize) -> Vec<u8> {
        (0..w * h)
            .map(|i| ((i * 2_654_435_761) >> 7) as u8 ^ (i / w) as u8)
            .collect()
    }

    /// Reads `bands` of the slice `bytes` and checks each against the whole decode.
    fn read_bands(bytes: Vec<u8>, fetch: u64, bands: &[Range<usize>]) -> (bool, u32) {
        read_windowed_bands(bytes, None, fetch, bands)
    }

    /// [`read_bands`] with the values mapped through `window`.
    fn read_windowed_bands(
        bytes: Vec<u8>,
        window: Option<Window>,
        fetch: u64,
        bands: &[Range<usize>],
    ) -> (bool, u32) {
        let whole = decode_windowed(&bytes, &what(), window).unwrap();
        let w = whole.width as usize;
        let store = OneObject::new(bytes);
        let mut slice =
            pollster::block_on(SliceRows::open_fetching(&store, &what(), window, fetch)).unwrap();
        assert_eq!((slice.width(), slice.height()), (w, whole.height as usize));
        let progressive = slice.is_progressive();
        for rows in bands {
            let band = pollster::block_on(slice.band(&store, rows.clone())).unwrap();
            let held = band.rows();
            let h = whole.height as usize;
            let rows = rows.start.min(h)..rows.end.min(h);
            assert!(
                held.start <= rows.start && rows.end <= held.end,
                "{held:?} ⊉ {rows:?}"
            );
            assert_eq!(
                band.pixels,
                &whole.pixels[held.start * w..held.end * w],
                "band {rows:?}"
            );
        }
        (progressive, store.reads.get())
    }

    #[test]
    fn a_grey_png_is_decoded_progressively_band_by_band() {
        let (w, h) = (97, 300);
        let png = crate::tilepack::encode_png(&noise(w, h), w as u32, h as u32).unwrap();
        let len = png.len() as u64;
        let bands = [0..10, 5..50, 50..50, 120..130, 125..200, 290..300];
        let (progressive, reads) = read_bands(png, 1000, &bands);
        assert!(progressive);
        assert!(u64::from(reads) >= len / 1000, "read in parts: {reads}");
        // Bands past the end are clamped; a band may extend a previous one.
        let png = crate::tilepack::encode_png(&noise(w, h), w as u32, h as u32).unwrap();
        read_bands(png, 1 << 20, &[0..400, 299..500]);
    }

    /// A 16-bit grey image of `w` × `h` values spread over the whole range, and its bytes as
    /// `format`.
    fn sixteen_bit(w: u32, h: u32, format: image::ImageFormat) -> (Vec<u16>, Vec<u8>) {
        let values: Vec<u16> = (0..w * h)
            .map(|i| (i.wrapping_mul(40_503) >> 3) as u16)
            .collect();
        let image = image::ImageBuffer::<image::Luma<u16>, _>::from_raw(w, h, values.clone());
        let mut bytes = Vec::new();
        image
            .unwrap()
            .write_to(&mut std::io::Cursor::new(&mut bytes), format)
            .unwrap();
        (values, bytes)
    }

    #[test]
    fn sixteen_bit_slices_map_through_the_window_row_by_row_or_whole() {
        let window = Window::new(1000, 50_000).unwrap();
        for format in [image::ImageFormat::Png, image::ImageFormat::Tiff] {
            let (values, bytes) = sixteen_bit(61, 90, format);
            let whole = decode_windowed(&bytes, &what(), Some(window)).unwrap();
            let expected: Vec<u8> = values.iter().map(|&v| window.map(v)).collect();
            assert_eq!(whole.pixels, expected, "{format:?}");
            let (progressive, _) =
                read_windowed_bands(bytes, Some(window), 500, &[0..10, 5..60, 80..90]);
            assert_eq!(progressive, format == image::ImageFormat::Png, "{format:?}");
        }
        // Without a window a 16-bit slice is refused, naming the field to give.
        let (_, png) = sixteen_bit(5, 5, image::ImageFormat::Png);
        let store = OneObject::new(png);
        let e = pollster::block_on(SliceRows::open(&store, &what(), None))
            .err()
            .unwrap();
        assert!(e.message().contains("give a window: [low, high]"), "{e}");
        // An 8-bit slice maps through a window too, progressively as whole.
        let png = crate::tilepack::encode_png(&noise(40, 30), 40, 30).unwrap();
        let window = Some(Window::new(20, 200).unwrap());
        let (progressive, _) = read_windowed_bands(png, window, 100, &[0..10, 10..30]);
        assert!(progressive);
    }

    #[test]
    fn other_images_are_decoded_whole_with_the_same_results() {
        let pixels = noise(40, 30);
        let gray = image::GrayImage::from_raw(40, 30, pixels).unwrap();
        for format in [image::ImageFormat::Tiff, image::ImageFormat::Png] {
            let mut bytes = Vec::new();
            let mut encoder = std::io::Cursor::new(&mut bytes);
            if format == image::ImageFormat::Png {
                // 4-bit grey: `image` widens it to 8 bits, so it decodes whole.
                let mut png = png::Encoder::new(&mut encoder, 40, 30);
                png.set_color(png::ColorType::Grayscale);
                png.set_depth(png::BitDepth::Four);
                let mut writer = png.write_header().unwrap();
                let packed: Vec<u8> = gray
                    .as_raw()
                    .chunks(2)
                    .map(|p| (p[0] & 0xf0) | (p[1] >> 4))
                    .collect();
                writer.write_image_data(&packed).unwrap();
                writer.finish().unwrap();
            } else {
                gray.write_to(&mut encoder, format).unwrap();
            }
            let (progressive, _) = read_bands(bytes, 100, &[0..30, 40..50]);
            assert!(!progressive, "{format:?}");
        }
    }

    #[test]
    fn a_band_above_the_last_one_is_refused() {
        let png = crate::tilepack::encode_png(&noise(20, 20), 20, 20).unwrap();
        let store = OneObject::new(png);
        let mut slice = pollster::block_on(SliceRows::open(&store, &what(), None)).unwrap();
        pollster::block_on(slice.band(&store, 5..10)).unwrap();
        let e = pollster::block_on(slice.band(&store, 4..10)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Internal);
        let mut slice = pollster::block_on(slice.into_whole(&store, &what())).unwrap();
        assert!(!slice.is_progressive());
        pollster::block_on(slice.band(&store, 0..10)).unwrap();
    }

    #[test]
    fn colour_and_broken_pngs_fail_as_before() {
        let mut png = Vec::new();
        image::DynamicImage::new_rgb8(3, 2)
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        let store = OneObject::new(png);
        let e = pollster::block_on(SliceRows::open(&store, &what(), None))
            .err()
            .unwrap();
        assert!(
            e.message().starts_with(
                "raw/s1.png in bucket lab: expected an 8-bit grayscale image, got Rgb8"
            ),
            "{e}"
        );

        let png = crate::tilepack::encode_png(&noise(64, 64), 64, 64).unwrap();
        let store = OneObject::new(png[..png.len() / 2].to_vec());
        let mut slice =
            pollster::block_on(SliceRows::open_fetching(&store, &what(), None, 100)).unwrap();
        let e = pollster::block_on(slice.band(&store, 0..64)).err().unwrap();
        assert_eq!(e.kind(), ErrorKind::UnreadableInput);
        assert!(e.message().contains("cannot decode image"), "{e}");
    }

    #[test]
    fn truncated_image_is_unreadable() {
        let png = crate::tilepack::encode_png(&[9; 64 * 64], 64, 64).unwrap();
        let e = decode_gray(&png[..png.len() / 2], &what()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::UnreadableInput);
        assert!(e.message().contains("cannot decode image"), "{e}");
    }
}
