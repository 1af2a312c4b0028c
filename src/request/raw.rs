//! Reading the original service's loose JSON: numbers as strings, arrays as strings, "True".
//!
//! The original's README shows `"transform": "[1 0 0 1 0 0]"` and `"writeRaw": "True"`, and its
//! clients send numbers both as JSON numbers and as strings. We accept every form it accepted
//! (docs/design.md §4) and reject anything else with a message that names the field.

use crate::{Error, Result};
use serde_json::{Map, Value};

/// The fields of one request body, read leniently and with field-named errors.
#[derive(Debug)]
pub struct LooseFields {
    map: Map<String, Value>,
}

impl LooseFields {
    /// Parses a request body that must be a JSON object.
    ///
    /// ```
    /// let f = emwrite::request::raw::LooseFields::parse(br#"{"minz": "3"}"#).unwrap();
    /// assert_eq!(f.uint("minz").unwrap(), 3);
    /// ```
    pub fn parse(body: &[u8]) -> Result<Self> {
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| Error::bad_field("body", format!("malformed JSON: {e}")))?;
        match value {
            Value::Object(map) => Ok(Self { map }),
            other => Err(Error::bad_field(
                "body",
                format!("expected a JSON object, got {}", kind_of(&other)),
            )),
        }
    }

    fn required(&self, field: &str) -> Result<&Value> {
        match self.map.get(field) {
            None | Some(Value::Null) => Err(Error::bad_field(field, "missing")),
            Some(v) => Ok(v),
        }
    }

    /// Whether the field is present (and not null).
    pub fn has(&self, field: &str) -> bool {
        !matches!(self.map.get(field), None | Some(Value::Null))
    }

    /// A required string field.
    pub fn string(&self, field: &str) -> Result<String> {
        match self.required(field)? {
            Value::String(s) => Ok(s.clone()),
            other => Err(Error::bad_field(
                field,
                format!("expected a string, got {}", kind_of(other)),
            )),
        }
    }

    /// A required non-negative integer, as a JSON number or a string holding one.
    pub fn uint(&self, field: &str) -> Result<u64> {
        let value = self.required(field)?;
        let number = match value {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse::<f64>().ok(),
            _ => None,
        };
        match number {
            Some(x) if x.is_finite() && x >= 0.0 && x.fract() == 0.0 && x <= u64::MAX as f64 => {
                Ok(x as u64)
            }
            _ => Err(Error::bad_field(
                field,
                format!("expected a non-negative integer, got {value}"),
            )),
        }
    }

    /// A required finite number, as a JSON number or a string holding one.
    pub fn number(&self, field: &str) -> Result<f64> {
        let value = self.required(field)?;
        let number = match value {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse::<f64>().ok(),
            _ => None,
        };
        number
            .filter(|x| x.is_finite())
            .ok_or_else(|| Error::bad_field(field, format!("expected a number, got {value}")))
    }

    /// A required list of finite numbers: a JSON array, or a string such as `"[1, 0, 0]"` or
    /// `"[1 0 0]"` (the original's README shows both). `len` is the exact count expected.
    pub fn numbers(&self, field: &str, len: usize) -> Result<Vec<f64>> {
        let numbers = self.number_list(field, &format!("a list of {len} numbers"))?;
        if numbers.len() != len {
            return Err(Error::bad_field(
                field,
                format!("expected {len} numbers, got {}", numbers.len()),
            ));
        }
        Ok(numbers)
    }

    /// A required list of non-negative integers of any length (see [`LooseFields::numbers`] for
    /// the accepted forms).
    pub fn uint_list(&self, field: &str) -> Result<Vec<u64>> {
        let numbers = self.number_list(field, "a list of whole numbers")?;
        whole_numbers(field, numbers)
    }

    /// The numbers of a list field, `expected` naming what was wanted when it is none.
    fn number_list(&self, field: &str, expected: &str) -> Result<Vec<f64>> {
        let value = self.required(field)?;
        let numbers = match value {
            Value::Array(items) => items
                .iter()
                .map(|item| match item {
                    Value::Number(n) => n.as_f64().filter(|x| x.is_finite()),
                    Value::String(s) => s.trim().parse::<f64>().ok().filter(|x| x.is_finite()),
                    _ => None,
                })
                .collect::<Option<Vec<f64>>>(),
            Value::String(s) => parse_number_list(s),
            _ => None,
        };
        numbers.ok_or_else(|| Error::bad_field(field, format!("expected {expected}, got {value}")))
    }

    /// A list of non-negative integers (see [`LooseFields::numbers`] for the accepted forms).
    pub fn uints(&self, field: &str, len: usize) -> Result<Vec<u64>> {
        whole_numbers(field, self.numbers(field, len)?)
    }

    /// A boolean: JSON `true`/`false`, or the original's strings `"True"`/`"False"` in any case.
    pub fn boolean(&self, field: &str) -> Result<bool> {
        let value = self.required(field)?;
        match value {
            Value::Bool(b) => Ok(*b),
            Value::String(s) if s.trim().eq_ignore_ascii_case("true") => Ok(true),
            Value::String(s) if s.trim().eq_ignore_ascii_case("false") => Ok(false),
            other => Err(Error::bad_field(
                field,
                format!("expected true or false, got {other}"),
            )),
        }
    }

    /// An optional field read with `read`, or `default` when absent.
    pub fn optional<T>(
        &self,
        field: &str,
        default: T,
        read: impl FnOnce(&Self, &str) -> Result<T>,
    ) -> Result<T> {
        if self.has(field) {
            read(self, field)
        } else {
            Ok(default)
        }
    }
}

/// `"[1, 0, 0]"`, `"[1 0 0]"`, `"1,0,0"`: brackets optional, commas and/or spaces between.
/// `numbers` of `field` as non-negative integers.
fn whole_numbers(field: &str, numbers: Vec<f64>) -> Result<Vec<u64>> {
    numbers
        .into_iter()
        .map(|x| {
            if x >= 0.0 && x.fract() == 0.0 && x <= u64::MAX as f64 {
                Ok(x as u64)
            } else {
                Err(Error::bad_field(
                    field,
                    format!("expected non-negative integers, got {x}"),
                ))
            }
        })
        .collect()
}

fn parse_number_list(text: &str) -> Option<Vec<f64>> {
    let inner = text.trim();
    let inner = inner.strip_prefix('[').unwrap_or(inner);
    let inner = inner.strip_suffix(']').unwrap_or(inner);
    inner
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<f64>().ok().filter(|x| x.is_finite()))
        .collect()
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn fields(json: &str) -> LooseFields {
        LooseFields::parse(json.as_bytes()).expect("test JSON is an object")
    }

    #[test]
    fn arrays_arrive_as_strings_with_commas_or_spaces_or_as_arrays() {
        for form in [
            r#"{"t": "[1 0 0 1 0 0]"}"#,
            r#"{"t": "[1, 0, 0, 1, 0, 0]"}"#,
            r#"{"t": "[1,0, 0 ,1,0,0]"}"#,
            r#"{"t": [1, 0, 0, 1, 0, 0]}"#,
            r#"{"t": ["1", 0, 0, 1, "0", 0]}"#,
        ] {
            assert_eq!(
                fields(form).numbers("t", 6).unwrap(),
                [1.0, 0.0, 0.0, 1.0, 0.0, 0.0],
                "{form}"
            );
        }
    }

    #[test]
    fn numbers_arrive_as_numbers_or_strings() {
        let f = fields(r#"{"a": 12, "b": "12", "c": 12.0, "d": "-1", "e": 1.5}"#);
        assert_eq!(f.uint("a").unwrap(), 12);
        assert_eq!(f.uint("b").unwrap(), 12);
        assert_eq!(f.uint("c").unwrap(), 12);
        assert!(
            f.uint("d")
                .unwrap_err()
                .message()
                .starts_with("d: expected")
        );
        assert!(f.uint("e").is_err());
    }

    #[test]
    fn booleans_arrive_as_python_strings_in_any_case() {
        let f = fields(r#"{"a": "True", "b": "false", "c": true, "d": "yes"}"#);
        assert!(f.boolean("a").unwrap());
        assert!(!f.boolean("b").unwrap());
        assert!(f.boolean("c").unwrap());
        assert_eq!(
            f.boolean("d").unwrap_err().to_string(),
            r#"d: expected true or false, got "yes""#
        );
    }

    #[test]
    fn errors_name_the_field() {
        let f = fields(r#"{"bbox": "[1, 2, 3]", "img": 5}"#);
        assert_eq!(
            f.numbers("bbox", 2).unwrap_err().to_string(),
            "bbox: expected 2 numbers, got 3"
        );
        assert_eq!(
            f.string("img").unwrap_err().to_string(),
            "img: expected a string, got a number"
        );
        assert_eq!(f.string("dest").unwrap_err().to_string(), "dest: missing");
        assert!(f.numbers("bbox", 3).is_ok());
    }

    #[test]
    fn malformed_json_and_non_objects_are_bad_requests() {
        let e = LooseFields::parse(b"{\"a\": ").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadRequest);
        assert!(e.message().starts_with("body: malformed JSON"));
        let e = LooseFields::parse(b"[1]").unwrap_err();
        assert_eq!(e.to_string(), "body: expected a JSON object, got an array");
    }
}
