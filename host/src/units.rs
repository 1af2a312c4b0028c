//! Byte sizes and durations for people: parsed from the command line and shown in messages, with
//! `bytesize` and `humantime`.

use std::time::Duration;

use bytesize::ByteSize;

/// Parses `--memory-limit`: a byte count with an optional binary (KiB, MiB, GiB, TiB) or decimal
/// (kB, MB, GB, TB) unit, any case; a bare number is bytes.
pub fn parse_byte_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let size: ByteSize = text.parse().map_err(|why| {
        format!("{text:?}: expected a number of bytes like 2GiB or 512MiB ({why})")
    })?;
    // bytesize saturates rather than failing on overflow; no memory limit is that large.
    if size.as_u64() == u64::MAX {
        return Err(format!("{text:?}: too large"));
    }
    Ok(size.as_u64())
}

/// Parses `--time-limit`: `90s`, `10m`, `1h`, `250ms`, `1h 30m`; a bare number is seconds, as
/// it was before humantime parsed these.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    humantime::parse_duration(text)
        .map_err(|why| format!("{text:?}: expected a duration like 90s, 10m or 1h ({why})"))
}

/// A byte count in binary units: `2.5 GiB`.
pub fn show_bytes(bytes: u64) -> String {
    ByteSize(bytes).display().iec().to_string()
}

/// A duration to the millisecond: `1s 372ms`, `250ms`.
///
/// humantime shows every unit down to nanoseconds; an elapsed time needs none below milliseconds.
pub fn show_duration(duration: Duration) -> String {
    let millis = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
    humantime::format_duration(Duration::from_millis(millis)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes_accept_binary_and_decimal_units() {
        assert_eq!(parse_byte_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_byte_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_byte_size("512 mib"), Ok(512 << 20));
        assert_eq!(parse_byte_size("64KiB"), Ok(64 << 10));
        assert_eq!(parse_byte_size("1000"), Ok(1000));
        assert_eq!(parse_byte_size("3GB"), Ok(3_000_000_000));
        for bad in ["2 parsecs", "GiB", "99999999999TiB"] {
            let why = parse_byte_size(bad).expect_err(bad);
            assert!(why.starts_with(&format!("{bad:?}: ")), "{why}");
        }
    }

    #[test]
    fn durations_accept_common_units() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5 fortnights").is_err());
    }

    #[test]
    fn sizes_and_durations_read_naturally() {
        assert_eq!(show_bytes((2 << 30) + (512 << 20)), "2.5 GiB");
        assert_eq!(show_bytes(2 << 30), "2.0 GiB");
        assert_eq!(show_duration(Duration::from_secs(90)), "1m 30s");
        assert_eq!(show_duration(Duration::from_micros(1_372_420)), "1s 372ms");
        assert_eq!(show_duration(Duration::from_micros(420)), "0s");
    }
}
