//! The stack file: where a volume goes and how each raw slice maps into the aligned frame, read
//! from JSON (`{"dest", "dest-tmp", "bbox", …, "slices": […]}`) or from CSV as aligners export
//! it (`z,img,a,b,c,d,e,f`, the shared fields as flags); and the tasks of each phase it makes.
//!
//! Every executor (`executor/`) runs the same tasks: each is the original API's JSON request
//! body for its endpoint (`docs/design.md` §4), checked here by the core's own request parser
//! before anything runs, so a stack the driver accepts is one every task accepts, whether it is
//! run in-process, POSTed to a service or picked by a batch task.

use std::collections::BTreeMap;
use std::fmt;

use clap::ValueEnum;
use emwrite::endpoint::Endpoint;
use emwrite::layout::{BLOCK_EDGE, stack_blocks};
use emwrite::request::{DEFAULT_JPEG_QUALITY, DEFAULT_RESOLUTION_NM};
use emwrite::storage::router::DefaultStore;
use serde::Deserialize;
use serde_json::json;

use crate::embed::call::Task;
use crate::error::HostError;
use crate::stack::source::StackFile;

/// The CSV columns, in the order aligners write them: the slice's z, its raw image under
/// `<dest>/raw/`, and its transform `[a, b, c, d, e, f]`.
pub const CSV_COLUMNS: [&str; 8] = ["z", "img", "a", "b", "c", "d", "e", "f"];

/// Most problems listed for one stack file; a file with more has a systematic fault that the
/// first ones show.
const MAX_PROBLEMS_SHOWN: usize = 50;

/// A whole stack, checked: every task it makes is a valid request.
#[derive(Debug, Clone)]
pub struct Stack {
    /// Location holding `raw/` and receiving `align/` and `neuroglancer/`.
    pub dest: String,
    /// Location receiving the tile packs.
    pub dest_tmp: String,
    /// Width and height of the aligned frame.
    pub bbox: [u32; 2],
    /// Voxel size at scale 0, nm.
    pub resolution: f64,
    /// Also write the raw-encoded volume.
    pub write_raw: bool,
    /// JPEG quality of the volume, 1–100.
    pub jpeg_quality: u8,
    /// The slices, in file order; their z are distinct.
    pub slices: Vec<Slice>,
}

/// One raw slice and its place in the volume.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slice {
    /// The slice's z index in the volume.
    pub z: u32,
    /// Object name under `<dest>/raw/`.
    pub img: String,
    /// `[a, b, c, d, e, f]` by columns, as in the original.
    pub transform: [f64; 6],
}

/// The shared fields given on the command line. For a CSV stack they are the only source
/// (`--dest`, `--dest-tmp` and `--bbox` required); for a JSON stack each one given replaces the
/// file's value, so one stack file can be sent to another bucket without editing it.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--dest`.
    pub dest: Option<String>,
    /// `--dest-tmp`.
    pub dest_tmp: Option<String>,
    /// `--bbox W,H`.
    pub bbox: Option<[u32; 2]>,
    /// `--resolution`.
    pub resolution: Option<f64>,
    /// `--write-raw[=true|false]`.
    pub write_raw: Option<bool>,
    /// `--jpeg-quality`.
    pub jpeg_quality: Option<u8>,
}

/// The three phases of a stack, in the order they run; each starts when the previous one
/// succeeded (`docs/design.md` §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, ValueEnum)]
pub enum Phase {
    /// Every slice through `alignedslice`: aligned PNGs and tile packs.
    Align,
    /// The volume's `info` through `ngmeta`.
    Meta,
    /// Every block through `ngshard`.
    Shard,
}

impl Phase {
    /// Every phase, in order.
    pub const ALL: [Self; 3] = [Self::Align, Self::Meta, Self::Shard];

    /// The phase's name on the command line and in messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Align => "align",
            Self::Meta => "meta",
            Self::Shard => "shard",
        }
    }

    /// What one task of the phase works on, for progress lines: `slices`, `info`, `blocks`.
    pub fn unit(self) -> &'static str {
        match self {
            Self::Align => "slices",
            Self::Meta => "info",
            Self::Shard => "blocks",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a task works on: a slice, the volume's info, or a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskId {
    /// Slice `z`, read from `<dest>/raw/<img>`.
    Slice {
        /// Its z.
        z: u32,
        /// Its raw image.
        img: String,
    },
    /// The volume's `info`.
    Meta,
    /// Block `[bx, by, bz]`, in units of [`BLOCK_EDGE`].
    Block([u32; 3]),
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskId::Slice { z, img } => write!(f, "slice z={z} ({img})"),
            TaskId::Meta => f.write_str("ngmeta"),
            TaskId::Block([x, y, z]) => write!(f, "block ({x}, {y}, {z})"),
        }
    }
}

/// One task of a phase: the request the original API takes for it.
#[derive(Debug, Clone)]
pub struct StackTask {
    /// What it works on.
    pub id: TaskId,
    /// The endpoint it calls.
    pub endpoint: Endpoint,
    /// Its JSON request body, in the original API's shape.
    pub body: Vec<u8>,
}

impl StackTask {
    /// The typed call of this request (through the core's parser), a block split when `split`.
    pub fn typed(&self, split: bool) -> Result<Task, HostError> {
        Task::from_request(self.endpoint, &self.body, split).map_err(|error| HostError::Task {
            context: self.id.to_string(),
            error,
        })
    }
}

impl Stack {
    /// Whether every location of the stack is on GCS when bare bucket names go to `store`: a
    /// service writing it then writes where this process can look too.
    pub fn all_on_gcs(&self, store: DefaultStore) -> bool {
        [&self.dest, &self.dest_tmp]
            .iter()
            .all(|location| location.starts_with("gs://") || store == DefaultStore::Gcs)
    }

    /// Reads the `text` of `file` (CSV when its name ends in `.csv`, else JSON) with the command
    /// line's `overrides`, and checks every task it makes. Every problem is reported at once, each
    /// with its line (CSV) or its slice (JSON); nothing runs if there is one.
    pub fn parse(file: &StackFile, text: &str, overrides: &Overrides) -> Result<Stack, HostError> {
        let parsed = if file.is_csv() {
            from_csv(text, overrides)
        } else {
            from_json(text, overrides)
        };
        parsed.and_then(Parsed::checked).map_err(|problems| {
            HostError::Config(format!("stack file {file}: {}", list(&problems)))
        })
    }

    /// The first slice's z.
    pub fn minz(&self) -> u32 {
        self.slices.iter().map(|s| s.z).min().unwrap_or(0)
    }

    /// The last slice's z.
    pub fn maxz(&self) -> u32 {
        self.slices.iter().map(|s| s.z).max().unwrap_or(0)
    }

    /// The blocks of the volume, in the order `ngshard` tasks run.
    pub fn blocks(&self) -> impl Iterator<Item = [u32; 3]> {
        stack_blocks(self.bbox, self.minz(), self.maxz())
    }

    /// The tasks of `phase`, in a fixed order (batch shares depend on it).
    pub fn tasks(&self, phase: Phase) -> Vec<StackTask> {
        match phase {
            Phase::Align => self.slices.iter().map(|s| self.slice_task(s)).collect(),
            Phase::Meta => vec![self.meta_task()],
            Phase::Shard => self.blocks().map(|b| self.block_task(b)).collect(),
        }
    }

    fn slice_task(&self, slice: &Slice) -> StackTask {
        let body = json!({
            "img": slice.img,
            "transform": slice.transform,
            "bbox": self.bbox,
            "dest": self.dest,
            "dest-tmp": self.dest_tmp,
            "slice": slice.z,
            "shard-size": BLOCK_EDGE,
        });
        StackTask {
            id: TaskId::Slice {
                z: slice.z,
                img: slice.img.clone(),
            },
            endpoint: Endpoint::AlignedSlice,
            body: body.to_string().into_bytes(),
        }
    }

    fn meta_task(&self) -> StackTask {
        let body = json!({
            "dest": self.dest,
            "minz": self.minz(),
            "maxz": self.maxz(),
            "shard-size": BLOCK_EDGE,
            "bbox": self.bbox,
            "writeRaw": self.write_raw,
            "resolution": self.resolution,
        });
        StackTask {
            id: TaskId::Meta,
            endpoint: Endpoint::NgMeta,
            body: body.to_string().into_bytes(),
        }
    }

    fn block_task(&self, block: [u32; 3]) -> StackTask {
        let body = json!({
            "dest": self.dest,
            "source": self.dest_tmp,
            "start": block,
            "shard-size": BLOCK_EDGE,
            "minz": self.minz(),
            "maxz": self.maxz(),
            "bbox": self.bbox,
            "writeRaw": self.write_raw,
            "jpeg-quality": self.jpeg_quality,
        });
        StackTask {
            id: TaskId::Block(block),
            endpoint: Endpoint::NgShard,
            body: body.to_string().into_bytes(),
        }
    }

    /// Every problem of the stack's slices: duplicate z, and what the core's request parser says
    /// about each task (so the messages are the API's own: `transform: …`, `bbox: …`), each with
    /// `origins[i]`, where slice `i` was written.
    fn slice_problems(&self, origins: &[Origin]) -> Vec<Problem> {
        let mut problems = Vec::new();
        let mut first_seen = BTreeMap::new();
        for (slice, origin) in self.slices.iter().zip(origins) {
            if let Some(first) = first_seen.insert(slice.z, origin) {
                problems.push(origin.problem(format!(
                    "z={} appears twice (first at {})",
                    slice.z, first.name
                )));
            } else if let Err(error) = self.slice_task(slice).typed(false) {
                problems.push(origin.problem(task_problem(&error)));
            }
        }
        problems
    }

    /// The problems of the fields every task shares, each once rather than once per slice: the
    /// info's and a block's request.
    fn shared_problems(&self) -> Vec<String> {
        let shared = [self.meta_task()]
            .into_iter()
            .chain(self.blocks().take(1).map(|b| self.block_task(b)));
        shared
            .filter_map(|task| task.typed(false).err())
            .map(|error| task_problem(&error))
            .collect()
    }
}

/// Where a slice was written: `line 7` of a CSV file, `slices[5]` of a JSON one.
#[derive(Debug, Clone)]
struct Origin {
    /// Sorts problems in file order.
    order: u64,
    name: String,
}

impl Origin {
    fn problem(&self, text: String) -> Problem {
        Problem {
            order: self.order,
            text: format!("{}: {text}", self.name),
        }
    }
}

/// A problem of one slice, sortable into file order.
#[derive(Debug)]
struct Problem {
    order: u64,
    text: String,
}

/// A stack as read, with where each slice came from and the rows that could not be read.
#[derive(Debug)]
struct Parsed {
    stack: Stack,
    origins: Vec<Origin>,
    unreadable: Vec<Problem>,
}

impl Parsed {
    /// The stack if it has no problem, else every problem in file order.
    fn checked(self) -> Result<Stack, Vec<String>> {
        let Parsed {
            stack,
            origins,
            mut unreadable,
        } = self;
        if stack.slices.is_empty() && unreadable.is_empty() {
            return Err(vec!["slices: empty".to_owned()]);
        }
        let shared = stack.shared_problems();
        if !shared.is_empty() {
            return Err(shared);
        }
        unreadable.extend(stack.slice_problems(&origins));
        if unreadable.is_empty() {
            return Ok(stack);
        }
        unreadable.sort_by_key(|p| p.order);
        Err(unreadable.into_iter().map(|p| p.text).collect())
    }
}

/// The core's message for a request it refused, without the task's label.
fn task_problem(error: &HostError) -> String {
    match error {
        HostError::Task { error, .. } => error.message().to_owned(),
        other => other.detail(),
    }
}

/// `problem` or `N problems:` and one per line, at most [`MAX_PROBLEMS_SHOWN`].
fn list(problems: &[String]) -> String {
    match problems {
        [one] => one.clone(),
        _ => {
            let mut text = format!("{} problems:", problems.len());
            for problem in problems.iter().take(MAX_PROBLEMS_SHOWN) {
                text.push_str("\n  ");
                text.push_str(problem);
            }
            if problems.len() > MAX_PROBLEMS_SHOWN {
                text.push_str(&format!(
                    "\n  … and {} more",
                    problems.len() - MAX_PROBLEMS_SHOWN
                ));
            }
            text
        }
    }
}

/// The JSON stack file, as `emwrite pipeline` has always read it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonStack {
    dest: String,
    #[serde(rename = "dest-tmp")]
    dest_tmp: String,
    bbox: [u32; 2],
    #[serde(default = "default_resolution")]
    resolution: f64,
    #[serde(rename = "writeRaw", alias = "write-raw", default)]
    write_raw: bool,
    #[serde(
        rename = "jpegQuality",
        alias = "jpeg-quality",
        default = "default_jpeg_quality"
    )]
    jpeg_quality: u8,
    slices: Vec<Slice>,
}

fn default_resolution() -> f64 {
    DEFAULT_RESOLUTION_NM
}

fn default_jpeg_quality() -> u8 {
    DEFAULT_JPEG_QUALITY
}

fn from_json(text: &str, overrides: &Overrides) -> Result<Parsed, Vec<String>> {
    // The path of the value serde stopped at (`bbox`, `slices[1].transform`) names the field.
    let mut json = serde_json::Deserializer::from_str(text);
    let file: JsonStack = serde_path_to_error::deserialize(&mut json).map_err(|e| {
        let (path, inner) = (e.path().to_string(), e.into_inner());
        let at = if path == "." {
            String::new()
        } else {
            format!("{path}: ")
        };
        vec![format!("{at}{inner}")]
    })?;
    let origins = (0..file.slices.len())
        .map(|i| Origin {
            order: i as u64,
            name: format!("slices[{i}]"),
        })
        .collect();
    let stack = Stack {
        dest: overrides.dest.clone().unwrap_or(file.dest),
        dest_tmp: overrides.dest_tmp.clone().unwrap_or(file.dest_tmp),
        bbox: overrides.bbox.unwrap_or(file.bbox),
        resolution: overrides.resolution.unwrap_or(file.resolution),
        write_raw: overrides.write_raw.unwrap_or(file.write_raw),
        jpeg_quality: overrides.jpeg_quality.unwrap_or(file.jpeg_quality),
        slices: file.slices,
    };
    Ok(Parsed {
        stack,
        origins,
        unreadable: Vec::new(),
    })
}

fn from_csv(text: &str, overrides: &Overrides) -> Result<Parsed, Vec<String>> {
    let mut missing_flags = Vec::new();
    for (given, flag) in [
        (overrides.dest.is_some(), "--dest"),
        (overrides.dest_tmp.is_some(), "--dest-tmp"),
        (overrides.bbox.is_some(), "--bbox W,H"),
    ] {
        if !given {
            missing_flags.push(format!("a CSV stack needs {flag}"));
        }
    }
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .comment(Some(b'#'))
        .from_reader(text.as_bytes());
    let columns = match reader.headers() {
        Ok(header) => column_positions(header),
        Err(error) => Err(format!("line 1: {}", csv_error(&error))),
    };
    let columns = match columns {
        Ok(columns) if missing_flags.is_empty() => columns,
        Ok(_) => return Err(missing_flags),
        Err(problem) => {
            missing_flags.push(problem);
            return Err(missing_flags);
        }
    };
    let (mut slices, mut origins, mut unreadable) = (Vec::new(), Vec::new(), Vec::new());
    for record in reader.records() {
        let (line, row) = match record {
            Ok(record) => (
                line_at(text, record.position()),
                csv_slice(&record, &columns),
            ),
            Err(error) => (line_at(text, error.position()), Err(csv_error(&error))),
        };
        let origin = Origin {
            order: line,
            name: format!("line {line}"),
        };
        match row {
            Ok(slice) => {
                slices.push(slice);
                origins.push(origin);
            }
            Err(problem) => unreadable.push(origin.problem(problem)),
        }
    }
    let stack = Stack {
        dest: overrides.dest.clone().unwrap_or_default(),
        dest_tmp: overrides.dest_tmp.clone().unwrap_or_default(),
        bbox: overrides.bbox.unwrap_or_default(),
        resolution: overrides.resolution.unwrap_or(DEFAULT_RESOLUTION_NM),
        write_raw: overrides.write_raw.unwrap_or(false),
        jpeg_quality: overrides.jpeg_quality.unwrap_or(DEFAULT_JPEG_QUALITY),
        slices,
    };
    Ok(Parsed {
        stack,
        origins,
        unreadable,
    })
}

/// The line a record starts on, from its byte offset.
///
/// The csv crate's own `Position::line` is off for records after blank or comment lines and with
/// CRLF endings (rust-csv issues 184, 208, 395); its byte offset is right, but may point at the
/// blank or comment lines before the record, which are skipped here.
fn line_at(text: &str, position: Option<&csv::Position>) -> u64 {
    let bytes = text.as_bytes();
    let mut at = position.map_or(0, |p| usize::try_from(p.byte()).unwrap_or(usize::MAX));
    at = at.min(bytes.len());
    loop {
        let rest = &bytes[at..];
        let blank = rest
            .iter()
            .take_while(|b| matches!(b, b' ' | b'\t' | b'\r'))
            .count();
        match rest.get(blank) {
            Some(b'\n') => at += blank + 1,
            Some(b'#') => {
                at += rest
                    .iter()
                    .position(|b| *b == b'\n')
                    .map_or(rest.len(), |n| n + 1);
            }
            _ => break,
        }
    }
    1 + bytes[..at].iter().filter(|b| **b == b'\n').count() as u64
}

/// Where each of [`CSV_COLUMNS`] is in the header; every one must be there, once, and no other.
fn column_positions(header: &csv::StringRecord) -> Result<[usize; 8], String> {
    let mut positions = [usize::MAX; 8];
    let mut unknown = Vec::new();
    for (at, name) in header.iter().enumerate() {
        match CSV_COLUMNS
            .iter()
            .position(|c| c.eq_ignore_ascii_case(name))
        {
            Some(column) if positions[column] == usize::MAX => positions[column] = at,
            Some(_) => return Err(format!("line 1: column {name:?} appears twice")),
            None => unknown.push(format!("{name:?}")),
        }
    }
    let missing: Vec<&str> = CSV_COLUMNS
        .iter()
        .zip(positions)
        .filter(|(_, at)| *at == usize::MAX)
        .map(|(name, _)| *name)
        .collect();
    if !missing.is_empty() || !unknown.is_empty() {
        let mut problem = format!("line 1: the header must be {}", CSV_COLUMNS.join(","));
        if !missing.is_empty() {
            problem.push_str(&format!("; missing {}", missing.join(", ")));
        }
        if !unknown.is_empty() {
            problem.push_str(&format!("; unknown {}", unknown.join(", ")));
        }
        return Err(problem);
    }
    Ok(positions)
}

/// One CSV row as a slice; the message names the column.
fn csv_slice(record: &csv::StringRecord, columns: &[usize; 8]) -> Result<Slice, String> {
    let field = |column: usize| record.get(columns[column]).unwrap_or("");
    let z = field(0)
        .parse::<u32>()
        .map_err(|_| format!("z: expected a whole number ≥ 0, got {:?}", field(0)))?;
    let img = field(1).to_owned();
    if img.is_empty() {
        return Err("img: empty".to_owned());
    }
    let mut transform = [0.0; 6];
    for (i, slot) in transform.iter_mut().enumerate() {
        let (name, text) = (CSV_COLUMNS[2 + i], field(2 + i));
        *slot = text
            .parse::<f64>()
            .ok()
            .filter(|x| x.is_finite())
            .ok_or_else(|| format!("{name}: expected a number, got {text:?}"))?;
    }
    Ok(Slice { z, img, transform })
}

/// The csv crate's error without the position, which the caller puts first as `line N`.
fn csv_error(error: &csv::Error) -> String {
    match error.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("expected {expected_len} fields, got {len}"),
        csv::ErrorKind::Utf8 { .. } => "not UTF-8".to_owned(),
        _ => error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csv_overrides() -> Overrides {
        Overrides {
            dest: Some("lab".into()),
            dest_tmp: Some("lab-tmp".into()),
            bbox: Some([1300, 1100]),
            ..Overrides::default()
        }
    }

    fn checked(parsed: Result<Parsed, Vec<String>>) -> Result<Stack, Vec<String>> {
        parsed.and_then(Parsed::checked)
    }

    #[test]
    fn json_reads_the_documented_shape() {
        let stack = checked(from_json(
            r#"{"dest": "lab", "dest-tmp": "lab-tmp", "bbox": [2048, 1500], "resolution": 8,
                "writeRaw": true, "slices": [{"z": 3, "img": "s3.png",
                "transform": [1, 0, 0, 1, 0, 0]}]}"#,
            &Overrides::default(),
        ))
        .expect("a valid stack file");
        assert_eq!(stack.bbox, [2048, 1500]);
        assert_eq!(stack.jpeg_quality, 75);
        assert!(stack.write_raw);
        assert_eq!(stack.slices[0].transform, [1.0, 0.0, 0.0, 1.0, 0.0, 0.0]);
    }

    #[test]
    fn flags_override_the_json_fields() {
        let overrides = Overrides {
            dest: Some("other".into()),
            write_raw: Some(false),
            ..Overrides::default()
        };
        let stack = checked(from_json(
            r#"{"dest": "lab", "dest-tmp": "t", "bbox": [20, 10], "writeRaw": true,
                "slices": [{"z": 0, "img": "a.png", "transform": [1, 0, 0, 1, 0, 0]}]}"#,
            &overrides,
        ))
        .expect("valid");
        assert_eq!((stack.dest.as_str(), stack.write_raw), ("other", false));
        assert_eq!(stack.dest_tmp, "t");
    }

    #[test]
    fn csv_reads_rows_with_the_shared_fields_from_flags() {
        let text = "z,img,a,b,c,d,e,f\n\
                    3, s3.png, 1.0005,-0.0014,0.0014,1.0005,42.7,38.1\n\
                    # a comment line\n\
                    4,s4.png,1,0,0,1,0,0\n";
        let stack = checked(from_csv(text, &csv_overrides())).expect("valid");
        assert_eq!(stack.slices.len(), 2);
        assert_eq!(stack.slices[0].img, "s3.png");
        assert_eq!(stack.slices[0].transform[4], 42.7);
        assert_eq!((stack.minz(), stack.maxz()), (3, 4));
        assert_eq!(stack.resolution, 8.0);
    }

    #[test]
    fn csv_lines_count_blank_and_comment_lines_and_crlf() {
        let text = "z,img,a,b,c,d,e,f\r\n\r\n# note\r\n0,s0.png,1,0,0,1,0,0\r\n\
                    1,s1.png,1,0,x,1,0,0\r\n\n2,s2.png,1,0,y,1,0,0\r\n";
        let problems = checked(from_csv(text, &csv_overrides())).expect_err("bad rows");
        assert_eq!(
            problems,
            [
                "line 5: c: expected a number, got \"x\"",
                "line 7: c: expected a number, got \"y\""
            ]
        );
    }

    #[test]
    fn csv_columns_may_come_in_any_order() {
        let text = "img,z,f,e,d,c,b,a\ns0.png,0,5,6,1,0,0,1\n";
        let stack = checked(from_csv(text, &csv_overrides())).expect("valid");
        assert_eq!(stack.slices[0].transform, [1.0, 0.0, 0.0, 1.0, 6.0, 5.0]);
    }

    #[test]
    fn every_bad_csv_row_is_named_by_its_line_in_file_order() {
        let text = "z,img,a,b,c,d,e,f\n\
                    0,s0.png,1,0,0,1,0,0\n\
                    1,s1.png,1,0,zero,1,0,0\n\
                    -2,s2.png,1,0,0,1,0,0\n\
                    3,s3.png,1,0,0,1,0\n\
                    0,s4.png,1,0,0,1,0,0\n\
                    5,s5.png,0,0,0,0,0,0\n\
                    6,../s6.png,1,0,0,1,0,0\n\
                    7,s7.png,1,0,0,1,0,0\n";
        let problems = checked(from_csv(text, &csv_overrides())).expect_err("bad rows");
        assert_eq!(problems.len(), 6, "{problems:#?}");
        assert_eq!(problems[0], "line 3: c: expected a number, got \"zero\"");
        assert!(
            problems[1].starts_with("line 4: z: expected a whole number"),
            "{problems:#?}"
        );
        assert_eq!(problems[2], "line 5: expected 8 fields, got 7");
        assert_eq!(problems[3], "line 6: z=0 appears twice (first at line 2)");
        assert!(
            problems[4].starts_with("line 7: transform: "),
            "{problems:#?}"
        );
        assert!(problems[5].starts_with("line 8: img: "), "{problems:#?}");
    }

    #[test]
    fn csv_needs_its_header_and_the_shared_flags() {
        let problems = checked(from_csv(
            "z,img,a,b,c,d,e\n0,s,1,0,0,1,0\n",
            &Overrides::default(),
        ))
        .expect_err("no flags, short header");
        let text = problems.join("\n");
        assert!(text.contains("a CSV stack needs --dest"), "{text}");
        assert!(text.contains("--dest-tmp"), "{text}");
        assert!(text.contains("--bbox W,H"), "{text}");
        assert!(
            text.contains("line 1: the header must be z,img,a,b,c,d,e,f; missing f"),
            "{text}"
        );

        let problems =
            checked(from_csv("z,img,a,b,c,d,e,f,g\n", &csv_overrides())).expect_err("extra");
        assert!(problems[0].contains("unknown \"g\""), "{problems:?}");
        let problems =
            checked(from_csv("z,img,a,b,c,d,e,f\n", &csv_overrides())).expect_err("no rows");
        assert_eq!(problems, ["slices: empty"]);
    }

    #[test]
    fn shared_field_problems_are_named_once() {
        let overrides = Overrides {
            jpeg_quality: Some(0),
            ..csv_overrides()
        };
        let text = "z,img,a,b,c,d,e,f\n0,s0.png,1,0,0,1,0,0\n1,s1.png,1,0,0,1,0,0\n";
        let problems = checked(from_csv(text, &overrides)).expect_err("quality 0");
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].starts_with("jpeg-quality: "), "{problems:?}");
    }

    #[test]
    fn tasks_are_the_original_requests_for_every_phase() {
        let text = "z,img,a,b,c,d,e,f\n3,s3.png,1,0,0,1,0,0\n1030,s1030.png,1,0,0,1,0,0\n";
        let stack = checked(from_csv(text, &csv_overrides())).expect("valid");
        let align = stack.tasks(Phase::Align);
        assert_eq!(align.len(), 2);
        assert_eq!(align[1].id.to_string(), "slice z=1030 (s1030.png)");
        let body: serde_json::Value = serde_json::from_slice(&align[0].body).expect("json");
        assert_eq!(body["dest-tmp"], "lab-tmp");
        assert_eq!(body["slice"], 3);
        let meta = stack.tasks(Phase::Meta);
        let body: serde_json::Value = serde_json::from_slice(&meta[0].body).expect("json");
        assert_eq!(
            (body["minz"].as_u64(), body["maxz"].as_u64()),
            (Some(3), Some(1030))
        );
        // 1300 × 1100 is 2 × 2 blocks; z 3..=1030 spans blocks 0 and 1.
        let shard = stack.tasks(Phase::Shard);
        assert_eq!(shard.len(), 8);
        assert_eq!(shard[7].id, TaskId::Block([1, 1, 1]));
        for task in align.iter().chain(&meta).chain(&shard) {
            task.typed(false).expect("every task is a valid request");
        }
    }
}
