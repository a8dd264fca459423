//! Calendar arithmetic in a customer's time zone: local days and weeks for
//! caps, quiet hours, birthdays at 09:00 local, period ends. All of it is pure
//! (time zone rules are data compiled into chrono-tz).

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, TimeZone, Timelike};
use chrono_tz::Tz;
use kairos_model::Timestamp;

/// The local date-time of `time` in `zone`.
pub fn local(time: Timestamp, zone: Tz) -> Option<DateTime<Tz>> {
    zone.timestamp_millis_opt(time.0).single()
}

/// Local calendar day number (days since 1970-01-01 local).
pub fn local_day(time: Timestamp, zone: Tz) -> i64 {
    match local(time, zone) {
        Some(local) => i64::from(local.date_naive().num_days_from_ce()),
        None => time.0.div_euclid(86_400_000),
    }
}

/// Minutes after local midnight.
pub fn local_minute_of_day(time: Timestamp, zone: Tz) -> u16 {
    local(time, zone)
        .map(|local| (local.hour() * 60 + local.minute()) as u16)
        .unwrap_or(0)
}

/// Local hour of day.
pub fn local_hour(time: Timestamp, zone: Tz) -> usize {
    local(time, zone)
        .map(|local| local.hour() as usize)
        .unwrap_or(0)
}

/// The instant of `date` at `minute_of_day` local time. In a DST gap the
/// time does not exist; the next valid minute is used. In an overlap, the
/// earlier instant.
pub fn at_local(date: NaiveDate, minute_of_day: u16, zone: Tz) -> Option<Timestamp> {
    let time = NaiveTime::from_hms_opt(
        u32::from(minute_of_day / 60),
        u32::from(minute_of_day % 60),
        0,
    )?;
    let mut naive = date.and_time(time);
    for _ in 0..180 {
        if let Some(instant) = zone.from_local_datetime(&naive).earliest() {
            return Some(Timestamp(instant.timestamp_millis()));
        }
        naive += chrono::Duration::minutes(1);
    }
    None
}

/// The first instant at or after `time` whose local minute-of-day is
/// `minute_of_day`.
pub fn next_local_minute(time: Timestamp, minute_of_day: u16, zone: Tz) -> Option<Timestamp> {
    let today = local(time, zone)?.date_naive();
    let candidate = at_local(today, minute_of_day, zone)?;
    if candidate >= time {
        Some(candidate)
    } else {
        at_local(today.succ_opt()?, minute_of_day, zone)
    }
}

/// The next occurrence of (month, day) at `minute_of_day` local time that is
/// strictly after `after`. 29 February falls on 28 February in common years.
pub fn next_yearly(
    after: Timestamp,
    month: u8,
    day: u8,
    minute_of_day: u16,
    zone: Tz,
) -> Option<Timestamp> {
    let year = local(after, zone)?.year();
    (year..year + 3).find_map(|year| {
        let date = NaiveDate::from_ymd_opt(year, u32::from(month), u32::from(day))
            .or_else(|| NaiveDate::from_ymd_opt(year, u32::from(month), u32::from(day) - 1))?;
        at_local(date, minute_of_day, zone).filter(|instant| *instant > after)
    })
}

/// Parses `YYYY-MM-DD`, `MM-DD` or an RFC 3339 date-time into (month, day).
pub fn parse_month_day(text: &str) -> Option<(u8, u8)> {
    let date_part = text.get(..10).unwrap_or(text);
    if let Ok(date) = NaiveDate::parse_from_str(date_part, "%Y-%m-%d") {
        return Some((date.month() as u8, date.day() as u8));
    }
    let (month, day) = text.split_once('-')?;
    let (month, day): (u8, u8) = (month.parse().ok()?, day.parse().ok()?);
    NaiveDate::from_ymd_opt(2000, u32::from(month), u32::from(day))?;
    Some((month, day))
}

/// Index of the calendar period containing `time` (months since year 0,
/// quarters since year 0, or the year) and the instant that period ends.
pub fn period_of(
    time: Timestamp,
    period: crate::config::Period,
    zone: Tz,
) -> Option<(i64, Timestamp)> {
    use crate::config::Period;
    let date = local(time, zone)?.date_naive();
    let (year, month0) = (date.year(), date.month0() as i32);
    let (index, end_year, end_month0) = match period {
        Period::Month => {
            let index = i64::from(year) * 12 + i64::from(month0);
            let next = month0 + 1;
            (index, year + next / 12, next % 12)
        }
        Period::Quarter => {
            let quarter = month0 / 3;
            let index = i64::from(year) * 4 + i64::from(quarter);
            let next = (quarter + 1) * 3;
            (index, year + next / 12, next % 12)
        }
        Period::Year => (i64::from(year), year + 1, 0),
    };
    let end_date = NaiveDate::from_ymd_opt(end_year, end_month0 as u32 + 1, 1)?;
    Some((index, at_local(end_date, 0, zone)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        Timestamp::parse_rfc3339(text).unwrap()
    }

    #[test]
    fn birthday_at_nine_local() {
        let zone: Tz = "Asia/Shanghai".parse().unwrap();
        let next = next_yearly(at("2026-03-01T00:00:00Z"), 3, 15, 9 * 60, zone).unwrap();
        assert_eq!(next, at("2026-03-15T01:00:00Z"));
        let leap = next_yearly(at("2026-01-01T00:00:00Z"), 2, 29, 9 * 60, Tz::UTC).unwrap();
        assert_eq!(leap, at("2026-02-28T09:00:00Z"));
    }

    #[test]
    fn quarter_end_in_local_time() {
        let zone: Tz = "America/New_York".parse().unwrap();
        let (_, end) = period_of(
            at("2026-11-24T12:00:00Z"),
            crate::config::Period::Quarter,
            zone,
        )
        .unwrap();
        assert_eq!(end, at("2027-01-01T05:00:00Z"));
    }

    #[test]
    fn month_day_formats() {
        assert_eq!(parse_month_day("1990-07-04"), Some((7, 4)));
        assert_eq!(parse_month_day("07-04"), Some((7, 4)));
        assert_eq!(parse_month_day("02-30"), None);
        assert_eq!(parse_month_day("soon"), None);
    }
}
