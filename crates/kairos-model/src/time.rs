//! Time as plain numbers: the engine never reads a clock, it is handed
//! [`Timestamp`]s. Millisecond precision matches Segment's timestamps and
//! CloudEvents' `time`.

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::ops::{Add, Mul, Sub};

/// An instant: milliseconds since 1970-01-01T00:00:00Z.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The wall clock, to the millisecond (the epoch if the clock is set
    /// before it).
    pub fn now() -> Timestamp {
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp(since_epoch.as_millis() as i64)
    }

    /// The earliest representable instant; the engine's clock starts here.
    pub const MIN: Timestamp = Timestamp(i64::MIN / 4);
    /// "The end of time": advancing to it fires every pending timer.
    pub const MAX: Timestamp = Timestamp(i64::MAX / 4);

    /// Milliseconds since the epoch.
    pub fn millis(self) -> i64 {
        self.0
    }

    /// Parses RFC 3339 (`2026-11-23T10:31:07.012Z`, any offset).
    pub fn parse_rfc3339(text: &str) -> Result<Timestamp, chrono::ParseError> {
        match parse_common_rfc3339(text.as_bytes()) {
            Some(millis) => Ok(Timestamp(millis)),
            None => Ok(Timestamp(
                DateTime::parse_from_rfc3339(text)?.timestamp_millis(),
            )),
        }
    }

    /// Formats as RFC 3339 in UTC with milliseconds, as CloudEvents expects.
    pub fn to_rfc3339(self) -> String {
        self.with_rfc3339(str::to_string)
    }

    /// Hands `use_text` this instant in RFC 3339 (UTC, milliseconds) without
    /// allocating for years 0000 to 9999, every instant an event or a
    /// decision carries; outside them, in chrono's notation. Actions carry
    /// four timestamps each, and formatting them through chrono was a tenth
    /// of the backtest's writing thread.
    pub fn with_rfc3339<R>(self, use_text: impl FnOnce(&str) -> R) -> R {
        match self.rfc3339_bytes() {
            // Only ASCII digits and separators were written.
            Some(fast) => use_text(std::str::from_utf8(&fast).unwrap_or_default()),
            None => use_text(&match Utc.timestamp_millis_opt(self.0).single() {
                Some(time) => time.to_rfc3339_opts(SecondsFormat::Millis, true),
                None => format!("@{}ms", self.0),
            }),
        }
    }

    /// `YYYY-MM-DDTHH:MM:SS.mmmZ` as ASCII, for years 0000 to 9999; `None`
    /// outside them. (JSON writers copy it as it is: it needs no escaping.)
    pub(crate) fn rfc3339_bytes(self) -> Option<[u8; 24]> {
        const FIRST: i64 = -62_167_219_200_000; // 0000-01-01T00:00:00Z
        const AFTER_LAST: i64 = 253_402_300_800_000; // 10000-01-01T00:00:00Z
        if !(FIRST..AFTER_LAST).contains(&self.0) {
            return None;
        }
        let (days, millis_of_day) = (self.0.div_euclid(86_400_000), self.0.rem_euclid(86_400_000));
        let (year, month, day) = civil_from_days(days);
        let (seconds_of_day, millis) = (millis_of_day / 1000, millis_of_day % 1000);
        let mut bytes = *b"0000-00-00T00:00:00.000Z";
        // Two digits at a time: one division per pair, not per digit.
        for (start, value) in [
            (0, year / 100),
            (2, year % 100),
            (5, month),
            (8, day),
            (11, seconds_of_day / 3600),
            (14, seconds_of_day / 60 % 60),
            (17, seconds_of_day % 60),
            (21, millis % 100),
        ] {
            let pair = 2 * value as usize;
            bytes[start..start + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
        }
        bytes[20] = b'0' + (millis / 100) as u8;
        Some(bytes)
    }

    /// As a chrono UTC date-time (for calendar arithmetic).
    pub fn to_utc(self) -> Option<DateTime<Utc>> {
        Utc.timestamp_millis_opt(self.0).single()
    }

    /// Adds a span, saturating at [`Timestamp::MIN`]/[`Timestamp::MAX`].
    pub fn saturating_add(self, span: Span) -> Timestamp {
        Timestamp(
            self.0
                .saturating_add(span.0)
                .clamp(Self::MIN.0, Self::MAX.0),
        )
    }
}

impl Add<Span> for Timestamp {
    type Output = Timestamp;
    fn add(self, span: Span) -> Timestamp {
        self.saturating_add(span)
    }
}

impl Sub<Span> for Timestamp {
    type Output = Timestamp;
    fn sub(self, span: Span) -> Timestamp {
        self.saturating_add(Span(-span.0))
    }
}

impl Sub for Timestamp {
    type Output = Span;
    fn sub(self, other: Timestamp) -> Span {
        Span(self.0.saturating_sub(other.0))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.with_rfc3339(|text| serializer.serialize_str(text))
    }
}

/// "00" to "99".
const DIGIT_PAIRS: &[u8; 200] = b"\
    0001020304050607080910111213141516171819\
    2021222324252627282930313233343536373839\
    4041424344454647484950515253545556575859\
    6061626364656667686970717273747576777879\
    8081828384858687888990919293949596979899";

/// Milliseconds since the epoch of the form nearly every event carries,
/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` with a valid date and time,
/// read without chrono (whose general parser was a tenth of the cost of
/// decoding a Segment call); `None` for anything else (other separators,
/// leap seconds, malformed text), which chrono then reads or rejects. As
/// chrono does, digits past the millisecond are dropped.
fn parse_common_rfc3339(text: &[u8]) -> Option<i64> {
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        text.get(range)?.iter().try_fold(0, |value, byte| {
            byte.is_ascii_digit()
                .then(|| value * 10 + i64::from(byte - b'0'))
        })
    };
    let separators = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    if text.len() < 20 || separators.iter().any(|&(at, byte)| text[at] != byte) {
        return None;
    }
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let mut at = 19;
    let mut millis = 0;
    if text[at] == b'.' {
        let digits = text[at + 1..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if digits == 0 || digits > 9 {
            return None;
        }
        let kept = digits.min(3);
        millis = number(at + 1..at + 1 + kept)? * 10_i64.pow(3 - kept as u32);
        at += 1 + digits;
    }
    let offset_minutes = match &text[at..] {
        b"Z" => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (hours, minutes) = (number(at + 1..at + 3)?, number(at + 4..at + 6)?);
            if hours > 23 || minutes > 59 {
                return None;
            }
            let offset = hours * 60 + minutes;
            if *sign == b'-' {
                -offset
            } else {
                offset
            }
        }
        _ => return None,
    };
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second
        - offset_minutes * 60;
    Some(seconds * 1000 + millis)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a date (month 1–12) in the proleptic Gregorian
/// calendar (Howard Hinnant's `days_from_civil`, the inverse of
/// `civil_from_days`).
pub const fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// Year, month and day of a day count since 1970-01-01 in the proleptic
/// Gregorian calendar (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let shifted = days + 719_468; // days since 0000-03-01
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Timestamp::parse_rfc3339(&text).map_err(serde::de::Error::custom)
    }
}

/// A signed length of time in milliseconds, written in pipelines as
/// `500ms`, `5s`, `30m`, `24h`, `3d`, `2w`, `3y` (365 d) or sums such as
/// `23h30m`; a leading `-` makes it negative (`-30d`: "30 days before").
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Span(pub i64);

/// Why a span did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a duration; accepted: a number followed by ms, s, m, h, d, w or y, possibly repeated (e.g. 30m, 24h, 23h30m, -30d)")]
pub struct SpanParseError {
    /// The text that was rejected.
    pub text: String,
}

impl Span {
    /// Zero length.
    pub const ZERO: Span = Span(0);
    /// One second.
    pub const SECOND: Span = Span(1_000);
    /// One minute.
    pub const MINUTE: Span = Span(60_000);
    /// One hour.
    pub const HOUR: Span = Span(3_600_000);
    /// One day (24 h; calendar days are the engine's business).
    pub const DAY: Span = Span(86_400_000);
    /// The longest duration a pipeline may configure, and the longest offset
    /// the engine derives (a customer's cadence): 100 years of 365 days.
    /// Bounding offsets keeps every timer's lag behind its deadline far
    /// inside what the engine stores (see `kairos_engine`'s `Lag`).
    pub const LONGEST: Span = Span(100 * 365 * 86_400_000);

    /// Milliseconds.
    pub fn millis(self) -> i64 {
        self.0
    }

    /// From whole seconds.
    pub fn seconds(seconds: i64) -> Span {
        Span(seconds * 1_000)
    }

    /// Parses the pipeline notation (see the type docs).
    pub fn parse(text: &str) -> Result<Span, SpanParseError> {
        let error = || SpanParseError {
            text: text.to_string(),
        };
        let trimmed = text.trim();
        let (negative, mut rest) = match trimmed.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, trimmed),
        };
        if rest.is_empty() {
            return Err(error());
        }
        let mut total: i64 = 0;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(|b| b.is_ascii_digit()).count();
            if digits == 0 {
                return Err(error());
            }
            let number: i64 = rest[..digits].parse().map_err(|_| error())?;
            rest = &rest[digits..];
            let unit_len = rest.bytes().take_while(|b| b.is_ascii_alphabetic()).count();
            let unit = match &rest[..unit_len] {
                "ms" => 1,
                "s" => 1_000,
                "m" => 60_000,
                "h" => 3_600_000,
                "d" => 86_400_000,
                "w" => 7 * 86_400_000,
                "y" => 365 * 86_400_000,
                _ => return Err(error()),
            };
            rest = &rest[unit_len..];
            total = number
                .checked_mul(unit)
                .and_then(|part| total.checked_add(part))
                .ok_or_else(error)?;
        }
        Ok(Span(if negative { -total } else { total }))
    }
}

impl fmt::Display for Span {
    /// The shortest notation that parses back to the same span (`1d12h`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("0s");
        }
        if self.0 < 0 {
            f.write_str("-")?;
        }
        let mut rest = self.0.unsigned_abs();
        for (unit, name) in [
            (86_400_000u64, "d"),
            (3_600_000, "h"),
            (60_000, "m"),
            (1_000, "s"),
            (1, "ms"),
        ] {
            if rest >= unit {
                write!(f, "{}{}", rest / unit, name)?;
                rest %= unit;
            }
        }
        Ok(())
    }
}

impl Mul<i64> for Span {
    type Output = Span;
    fn mul(self, factor: i64) -> Span {
        Span(self.0.saturating_mul(factor))
    }
}

impl Add for Span {
    type Output = Span;
    fn add(self, other: Span) -> Span {
        Span(self.0.saturating_add(other.0))
    }
}

impl Serialize for Span {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Span::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fast formatter agrees with chrono on every instant it covers,
    /// and its edges fall back to chrono.
    #[test]
    fn formats_rfc3339_as_chrono_does() {
        let chrono_text = |at: Timestamp| {
            Utc.timestamp_millis_opt(at.0)
                .single()
                .map(|time| time.to_rfc3339_opts(SecondsFormat::Millis, true))
        };
        let first = -62_167_219_200_000;
        let after_last = 253_402_300_800_000;
        let mut instants = vec![
            0,
            -1,
            1,
            first,
            first - 1,
            after_last - 1,
            after_last,
            951_782_400_000,    // 2000-02-29
            4_107_542_399_999,  // 2100-02-28T23:59:59.999
            -2_203_891_200_001, // 1900-02-28T23:59:59.999
            1_795_420_267_012,  // 2026-11-23T10:31:07.012
        ];
        // A walk over the whole range in uneven steps (hitting every month,
        // leap days and day boundaries), plus every day of a leap cycle.
        let mut at = first;
        while at < after_last {
            instants.push(at);
            at += 86_400_000 * 37 + 3_601_001;
        }
        instants.extend((0..146_097 * 2).map(|day| -86_400_000 * 146_097 + day * 86_400_000 - 1));
        for millis in instants {
            let at = Timestamp(millis);
            match at.rfc3339_bytes() {
                Some(fast) => assert_eq!(
                    Some(String::from_utf8(fast.to_vec()).unwrap()),
                    chrono_text(at),
                    "{millis}"
                ),
                None => assert!(!(first..after_last).contains(&millis), "{millis}"),
            }
            assert_eq!(Some(at.to_rfc3339()), chrono_text(at), "{millis}");
        }
    }

    #[test]
    fn parses_pipeline_notation() {
        assert_eq!(Span::parse("30m").unwrap(), Span(30 * 60_000));
        assert_eq!(
            Span::parse("23h30m").unwrap(),
            Span(23 * 3_600_000 + 30 * 60_000)
        );
        assert_eq!(Span::parse("-30d").unwrap(), Span(-30 * 86_400_000));
        assert_eq!(Span::parse("500ms").unwrap(), Span(500));
        assert_eq!(Span::parse("3y").unwrap(), Span(3 * 365 * 86_400_000));
        for bad in [
            "",
            "30",
            "m",
            "5 parsecs",
            "-",
            "1.5h",
            "99999999999999999y",
        ] {
            assert!(Span::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn display_round_trips() {
        for text in ["30m", "1d12h", "-30d", "250ms", "0s", "5s"] {
            let span = Span::parse(text).unwrap();
            assert_eq!(Span::parse(&span.to_string()).unwrap(), span);
        }
    }

    #[test]
    fn rfc3339_round_trips_in_utc_millis() {
        let time = Timestamp::parse_rfc3339("2026-11-23T18:31:07.012+08:00").unwrap();
        assert_eq!(time.to_rfc3339(), "2026-11-23T10:31:07.012Z");
    }

    /// The fast reader agrees with chrono, value and verdict, on texts near
    /// the common form: every field at and past its limits, fractions of
    /// any length, each offset form, and single bytes changed anywhere.
    mod reading_rfc3339 {
        use super::*;
        use proptest::prelude::*;

        fn chrono_reads(text: &str) -> Option<i64> {
            DateTime::parse_from_rfc3339(text)
                .ok()
                .map(|time| time.timestamp_millis())
        }

        fn near_common_form() -> impl Strategy<Value = String> {
            (
                (0..=9999_u32, 0..=13_u32, 0..=32_u32),
                (0..=24_u32, 0..=60_u32, 0..=61_u32),
                proptest::option::of("[0-9]{0,12}"),
                prop_oneof![
                    Just("Z".to_string()),
                    Just("z".to_string()),
                    Just(String::new()),
                    (any::<bool>(), 0..=25_u32, 0..=61_u32).prop_map(|(minus, h, m)| format!(
                        "{}{h:02}:{m:02}",
                        if minus { '-' } else { '+' }
                    )),
                ],
            )
                .prop_map(|((y, mo, d), (h, mi, s), fraction, offset)| {
                    let fraction = fraction.map(|f| format!(".{f}")).unwrap_or_default();
                    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{fraction}{offset}")
                })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(4000))]

            #[test]
            fn agrees_with_chrono(text in near_common_form(), at in 0..40_usize, byte in any::<u8>(), change in any::<bool>()) {
                let mut bytes = text.into_bytes();
                if change && at < bytes.len() {
                    bytes[at] = byte;
                }
                if let Ok(text) = String::from_utf8(bytes) {
                    prop_assert_eq!(
                        Timestamp::parse_rfc3339(&text).ok().map(Timestamp::millis),
                        chrono_reads(&text),
                        "{:?}", text
                    );
                }
            }
        }

        #[test]
        fn reads_every_day_of_a_leap_cycle_as_chrono_does() {
            let start = Timestamp::parse_rfc3339("1999-12-31T23:59:59.999-01:30").unwrap();
            for day in 0..(4 * 366) {
                let text = Timestamp(start.0 + day * 86_400_000).to_rfc3339();
                assert!(parse_common_rfc3339(text.as_bytes()).is_some(), "{text}");
                assert_eq!(
                    Timestamp::parse_rfc3339(&text).ok().map(Timestamp::millis),
                    chrono_reads(&text)
                );
            }
        }
    }
}
