//! Reading a stack file: JSON in the shape of the core's `wire::StackFile` (`{"dest",
//! "dest-tmp", "bbox", …, "slices": […]}`, every key the core's), or CSV as aligners export it
//! (`z,img,a,b,c,d,e,f`, the shared fields as flags); and checking it by the core's rules for
//! each request it makes (`tasks.rs`), so that a stack the driver accepts is one every task
//! accepts, whether it is run in-process, POSTed to a service or picked by a batch task.
//!
//! Every problem is reported at once, each with its line (CSV) or its slice (JSON), and the
//! messages are the API's own (`transform: …`, `bbox: …`); nothing runs if there is one.

use std::collections::BTreeMap;

use emwrite::request::wire::{self, StackFile as JsonStack};
use emwrite::request::{DEFAULT_JPEG_QUALITY, DEFAULT_RESOLUTION_NM, OutputFormat};
use emwrite::storage::location::Location;
use emwrite::window::Window;

use crate::error::HostError;
use crate::stack::source::StackFile;
use crate::stack::tasks::{Slice, Stack};

/// The CSV columns, in the order aligners write them: the slice's z, its raw image under
/// `<dest>/raw/`, and its transform `[a, b, c, d, e, f]`.
pub const CSV_COLUMNS: [&str; 8] = ["z", "img", "a", "b", "c", "d", "e", "f"];

/// Most problems listed for one stack file; a file with more has a systematic fault that the
/// first ones show.
const MAX_PROBLEMS_SHOWN: usize = 50;

/// Reads the `text` of `file` (CSV when its name ends in `.csv`, else JSON) with the command
/// line's `overrides`, and checks every task it makes.
pub fn parse(file: &StackFile, text: &str, overrides: &Overrides) -> Result<Stack, HostError> {
    let read = if file.is_csv() {
        from_csv(text, overrides)
    } else {
        from_json(text, overrides)
    };
    read.and_then(Read::checked)
        .map_err(|problems| HostError::Config(format!("stack file {file}: {}", list(&problems))))
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
    /// `--resolution NM` or `X,Y,Z`.
    pub resolution: Option<[f64; 3]>,
    /// `--write-raw[=true|false]`.
    pub write_raw: Option<bool>,
    /// `--jpeg-quality`.
    pub jpeg_quality: Option<u8>,
    /// `--window LOW,HIGH`.
    pub window: Option<[u64; 2]>,
    /// `--fill-missing`.
    pub fill_missing: Option<bool>,
    /// `--format`.
    pub format: Option<OutputFormat>,
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

/// A stack as read, before its checks: the shared fields as written, the slices with where each
/// came from, and the rows that could not be read.
#[derive(Debug)]
struct Read {
    dest: String,
    dest_tmp: String,
    bbox: [u32; 2],
    resolution: [f64; 3],
    write_raw: bool,
    jpeg_quality: u8,
    window: Option<[u64; 2]>,
    fill_missing: bool,
    format: OutputFormat,
    slices: Vec<Slice>,
    origins: Vec<Origin>,
    unreadable: Vec<Problem>,
}

impl Read {
    /// The stack if it has no problem, else every problem in file order. The fields every task
    /// shares are checked first, each problem named once rather than once per slice; then each
    /// slice: its z unique and its request valid.
    fn checked(self) -> Result<Stack, Vec<String>> {
        let Read {
            slices,
            origins,
            mut unreadable,
            ..
        } = self;
        if slices.is_empty() && unreadable.is_empty() {
            return Err(vec!["slices: empty".to_owned()]);
        }
        let (dest, dest_tmp) = match (
            Location::parse(wire::DEST, &self.dest),
            Location::parse(wire::DEST_TMP, &self.dest_tmp),
        ) {
            (Ok(dest), Ok(dest_tmp)) => (dest, dest_tmp),
            (dest, dest_tmp) => {
                let problems = [dest.err(), dest_tmp.err()].into_iter().flatten();
                return Err(problems.map(|e| e.message().to_owned()).collect());
            }
        };
        let window = match self
            .window
            .map(|[low, high]| Window::new(low, high))
            .transpose()
        {
            Ok(window) => window,
            Err(e) => return Err(vec![e.message().to_owned()]),
        };
        let missing = gaps(slices.iter().map(|s| s.z));
        // A row that could not be read may be the slice that looks missing: gaps are named once
        // every row reads.
        let gap_problem = (!missing.is_empty() && !self.fill_missing && unreadable.is_empty())
            .then(|| gaps_problem(&slices, &missing));
        let stack = Stack {
            dest,
            dest_tmp,
            bbox: self.bbox,
            resolution: self.resolution,
            write_raw: self.write_raw,
            format: self.format,
            jpeg_quality: self.jpeg_quality,
            window,
            missing,
            slices,
        };
        let shared: Vec<String> = [stack.meta_request().validate()]
            .into_iter()
            .chain(
                stack
                    .blocks()
                    .take(1)
                    .map(|b| stack.block_request(b).validate()),
            )
            .filter_map(|checked| checked.err().map(|e| e.message().to_owned()))
            .collect();
        if !shared.is_empty() {
            return Err(shared);
        }
        unreadable.extend(slice_problems(&stack, &origins));
        if unreadable.is_empty() && gap_problem.is_none() {
            return Ok(stack);
        }
        unreadable.sort_by_key(|p| p.order);
        // The gap first: it is about the stack as a whole.
        let texts = unreadable.into_iter().map(|p| p.text);
        Err(gap_problem.into_iter().chain(texts).collect())
    }
}

/// Every problem of the stack's slices: duplicate z, and what the core's rules say about each
/// slice's request, each with `origins[i]`, where slice `i` was written.
fn slice_problems(stack: &Stack, origins: &[Origin]) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut first_seen = BTreeMap::new();
    for (slice, origin) in stack.slices.iter().zip(origins) {
        if let Some(first) = first_seen.insert(slice.z, origin) {
            problems.push(origin.problem(format!(
                "z={} appears twice (first at {})",
                slice.z, first.name
            )));
        } else if let Err(error) = stack.slice_request(slice).validate() {
            problems.push(origin.problem(error.message().to_owned()));
        }
    }
    problems
}

/// The z between the first and the last of `zs` that none of them is, ascending.
fn gaps(zs: impl Iterator<Item = u32>) -> Vec<u32> {
    let present: std::collections::BTreeSet<u32> = zs.collect();
    let (Some(&first), Some(&last)) = (present.first(), present.last()) else {
        return Vec::new();
    };
    (first..=last).filter(|z| !present.contains(z)).collect()
}

/// Most runs of missing slices named in the gap problem; the count covers the rest.
const MAX_GAPS_SHOWN: usize = 20;

/// The problem of a stack with `missing` slices: its z range, each run of missing z, and the
/// way to go on.
fn gaps_problem(slices: &[Slice], missing: &[u32]) -> String {
    let first = slices.iter().map(|s| s.z).min().unwrap_or(0);
    let last = slices.iter().map(|s| s.z).max().unwrap_or(0);
    let mut runs: Vec<(u32, u32)> = Vec::new();
    for &z in missing {
        match runs.last_mut() {
            Some((_, end)) if *end + 1 == z => *end = z,
            _ => runs.push((z, z)),
        }
    }
    let mut named: Vec<String> = runs
        .iter()
        .take(MAX_GAPS_SHOWN)
        .map(|&(start, end)| match end - start {
            0 => start.to_string(),
            _ => format!("{start}-{end}"),
        })
        .collect();
    if runs.len() > MAX_GAPS_SHOWN {
        named.push(format!("and {} more runs", runs.len() - MAX_GAPS_SHOWN));
    }
    format!(
        "slices: z {first}-{last} has {} missing slice{} (z {}); give --fill-missing \
         (\"{}\": true in a JSON stack file) to fill them with black",
        missing.len(),
        if missing.len() == 1 { "" } else { "s" },
        named.join(", "),
        wire::FILL_MISSING,
    )
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

fn from_json(text: &str, overrides: &Overrides) -> Result<Read, Vec<String>> {
    // The path of the value serde stopped at (`bbox`, `slices[1].transform`) names the field.
    let mut json = serde_json::Deserializer::from_str(text);
    let file: JsonStack<Slice> = serde_path_to_error::deserialize(&mut json).map_err(|e| {
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
    Ok(Read {
        dest: overrides.dest.clone().unwrap_or(file.dest),
        dest_tmp: overrides.dest_tmp.clone().unwrap_or(file.dest_tmp),
        bbox: overrides.bbox.unwrap_or(file.bbox),
        resolution: overrides.resolution.unwrap_or(file.resolution.nm()),
        write_raw: overrides.write_raw.unwrap_or(file.write_raw),
        jpeg_quality: overrides.jpeg_quality.unwrap_or(file.jpeg_quality),
        window: overrides.window.or(file.window),
        fill_missing: overrides.fill_missing.unwrap_or(file.fill_missing),
        format: overrides.format.unwrap_or(file.format),
        slices: file.slices,
        origins,
        unreadable: Vec::new(),
    })
}

fn from_csv(text: &str, overrides: &Overrides) -> Result<Read, Vec<String>> {
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
    Ok(Read {
        dest: overrides.dest.clone().unwrap_or_default(),
        dest_tmp: overrides.dest_tmp.clone().unwrap_or_default(),
        bbox: overrides.bbox.unwrap_or_default(),
        resolution: overrides.resolution.unwrap_or([DEFAULT_RESOLUTION_NM; 3]),
        write_raw: overrides.write_raw.unwrap_or(false),
        jpeg_quality: overrides.jpeg_quality.unwrap_or(DEFAULT_JPEG_QUALITY),
        window: overrides.window,
        fill_missing: overrides.fill_missing.unwrap_or(false),
        format: overrides.format.unwrap_or_default(),
        slices,
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

    fn checked(read: Result<Read, Vec<String>>) -> Result<Stack, Vec<String>> {
        read.and_then(Read::checked)
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
        assert_eq!(
            (stack.dest.to_string(), stack.write_raw),
            ("other".into(), false)
        );
        assert_eq!(stack.dest_tmp.to_string(), "t");
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
        assert_eq!(stack.resolution, [8.0; 3]);
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
    fn a_gap_in_z_is_named_and_refused_unless_filled() {
        let text = "z,img,a,b,c,d,e,f\n3,s3.png,1,0,0,1,0,0\n5,s5.png,1,0,0,1,0,0\n\
                    9,s9.png,1,0,0,1,0,0\n";
        let problems = checked(from_csv(text, &csv_overrides())).expect_err("gaps");
        assert_eq!(
            problems,
            [
                "slices: z 3-9 has 4 missing slices (z 4, 6-8); give --fill-missing \
              (\"fill-missing\": true in a JSON stack file) to fill them with black"
            ]
        );
        let filled = Overrides {
            fill_missing: Some(true),
            ..csv_overrides()
        };
        let stack = checked(from_csv(text, &filled)).expect("filled");
        assert_eq!(stack.missing, [4, 6, 7, 8]);
        let json = r#"{"dest": "lab", "dest-tmp": "t", "bbox": [20, 10], "fill-missing": true,
            "window": [100, 4000], "slices": [{"z": 0, "img": "a.png", "transform": [1, 0, 0, 1, 0, 0]},
            {"z": 2, "img": "b.png", "transform": [1, 0, 0, 1, 0, 0]}]}"#;
        let stack = checked(from_json(json, &Overrides::default())).expect("filled");
        assert_eq!(stack.missing, [1]);
        assert_eq!(stack.window.map(Window::bounds), Some([100, 4000]));
        let bad_window = Overrides {
            window: Some([4000, 100]),
            ..Overrides::default()
        };
        let problems = checked(from_json(json, &bad_window)).expect_err("bad window");
        assert!(problems[0].starts_with("window: "), "{problems:?}");
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
}
