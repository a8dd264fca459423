//! Calendar arithmetic in a customer's time zone: local days and weeks for
//! caps, quiet hours, birthdays at 09:00 local, period ends. All of it is pure
//! (time zone rules are data compiled into chrono-tz).

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, TimeZone};
use chrono_tz::Tz;
use kairos_model::Timestamp;

/// The local date-time of `time` in `zone`.
pub fn local(time: Timestamp, zone: Tz) -> Option<DateTime<Tz>> {
    zone.timestamp_millis_opt(time.0).single()
}

/// Local calendar day number (days since 0001-01-01 local, as chrono's
/// `num_days_from_ce`).
pub fn local_day(time: Timestamp, zone: Tz) -> i64 {
    match utc_offset(time, zone) {
        Some(offset) => (time.0 + offset).div_euclid(DAY) + EPOCH_DAY,
        None => time.0.div_euclid(DAY) + EPOCH_DAY,
    }
}

/// Minutes after local midnight.
pub fn local_minute_of_day(time: Timestamp, zone: Tz) -> u16 {
    utc_offset(time, zone)
        .map(|offset| ((time.0 + offset).rem_euclid(DAY) / 60_000) as u16)
        .unwrap_or(0)
}

/// Local hour of day.
pub fn local_hour(time: Timestamp, zone: Tz) -> usize {
    usize::from(local_minute_of_day(time, zone) / 60)
}

const DAY: i64 = 86_400_000;

/// `num_days_from_ce` of 1970-01-01.
const EPOCH_DAY: i64 = 719_163;

/// The local calendar date of `time` in `zone`: what
/// `local(time, zone)?.date_naive()` gives, from the cached offset.
fn local_date(time: Timestamp, zone: Tz) -> Option<NaiveDate> {
    match utc_offset(time, zone) {
        Some(offset) => {
            let days = (time.0 + offset).div_euclid(DAY) + EPOCH_DAY;
            NaiveDate::from_num_days_from_ce_opt(i32::try_from(days).ok()?)
        }
        None => Some(local(time, zone)?.date_naive()),
    }
}

/// The zone's offset from UTC at `time` in milliseconds, 0 out of
/// chrono's range (what the offset of `local(time, zone)` gives).
pub fn utc_offset_ms(time: Timestamp, zone: Tz) -> i64 {
    utc_offset(time, zone)
        .or_else(|| chrono_offset(time, zone))
        .unwrap_or(0)
}

/// Offsets are looked up per hour of UTC time.
const HOUR: i64 = 3_600_000;

/// Recently used (zone, hour) → UTC offset, direct-mapped.
const CACHED_HOURS: usize = 1024;

#[derive(Clone, Copy)]
struct CachedOffset {
    zone: Tz,
    hour: i64,
    offset: i64,
}

thread_local! {
    static OFFSETS: [std::cell::Cell<Option<CachedOffset>>; CACHED_HOURS] =
        const { [const { std::cell::Cell::new(None) }; CACHED_HOURS] };
}

/// The zone's offset from UTC at `time`, in milliseconds (`None` out of
/// chrono's range).
///
/// Caps, quiet hours and send-time choices ask for local days and hours
/// several times per decision, and chrono-tz answers each by a binary
/// search of the zone's transitions. An offset is constant between
/// transitions, which come at most twice a year: so it is computed once per
/// zone and UTC hour, and that hour is cached when the offset is the same at
/// both of its ends (no zone changes its offset twice within an hour; the
/// hour of a transition is simply not cached). A test compares the result
/// with chrono's for every zone.
fn utc_offset(time: Timestamp, zone: Tz) -> Option<i64> {
    let hour = time.0.div_euclid(HOUR);
    let slot = (hour as usize).wrapping_mul(31).wrapping_add(zone as usize) % CACHED_HOURS;
    OFFSETS.with(|cache| {
        if let Some(cached) = cache[slot].get() {
            if cached.hour == hour && cached.zone == zone {
                return Some(cached.offset);
            }
        }
        let start_ms = hour.checked_mul(HOUR)?;
        let start = chrono_offset(Timestamp(start_ms), zone)?;
        let end = chrono_offset(Timestamp(start_ms.checked_add(HOUR - 1)?), zone)?;
        if start != end {
            return chrono_offset(time, zone);
        }
        cache[slot].set(Some(CachedOffset {
            zone,
            hour,
            offset: start,
        }));
        Some(start)
    })
}

fn chrono_offset(time: Timestamp, zone: Tz) -> Option<i64> {
    use chrono::Offset;
    let local = local(time, zone)?;
    Some(i64::from(local.offset().fix().local_minus_utc()) * 1000)
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
    let date = local_date(time, zone)?;
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
    let end = period_end(period, index, (end_year, end_month0), zone)?;
    Some((index, end))
}

/// A cached end of a period (see [`period_end`]).
#[derive(Clone, Copy)]
struct CachedEnd {
    zone: Tz,
    period: crate::config::Period,
    index: i64,
    end: Timestamp,
}

/// Recently asked period ends, direct-mapped.
const CACHED_ENDS: usize = 64;

thread_local! {
    static PERIOD_ENDS: [std::cell::Cell<Option<CachedEnd>>; CACHED_ENDS] =
        const { [const { std::cell::Cell::new(None) }; CACHED_ENDS] };
}

/// Local midnight on the first day of (`year`, `month0`), which ends period
/// `index`. Every order asks for the end of its quarter (period-end
/// schedules), and chrono-tz finds a local midnight by a search of the
/// zone's transitions, some 400 instructions: the answer depends only on
/// the zone and the period, so it is cached.
fn period_end(
    period: crate::config::Period,
    index: i64,
    (year, month0): (i32, i32),
    zone: Tz,
) -> Option<Timestamp> {
    let slot = (index as usize)
        .wrapping_mul(31)
        .wrapping_add((zone as usize).wrapping_mul(7))
        .wrapping_add(period as usize)
        % CACHED_ENDS;
    PERIOD_ENDS.with(|cache| {
        if let Some(cached) = cache[slot].get() {
            if cached.index == index && cached.zone == zone && cached.period == period {
                return Some(cached.end);
            }
        }
        let end_date = NaiveDate::from_ymd_opt(year, month0 as u32 + 1, 1)?;
        let end = at_local(end_date, 0, zone)?;
        cache[slot].set(Some(CachedEnd {
            zone,
            period,
            index,
            end,
        }));
        Some(end)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Timelike;

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
    fn cached_offsets_agree_with_chrono_in_every_zone() {
        // Arbitrary instants from 1900 to 2040 (before 1970 too, where
        // times are negative and old offsets have odd minutes), each also
        // at the edges of its UTC hour.
        let mut instants: Vec<i64> = Vec::new();
        let mut state: u64 = 42;
        for _ in 0..300 {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            // 1900-01-01 .. 2040-01-01, to the millisecond.
            instants.push(-2_208_988_800_000 + (state >> 20) as i64 % 4_417_977_600_000);
        }
        for zone in chrono_tz::TZ_VARIANTS {
            for &ms in &instants {
                for probe in [ms, ms - ms.rem_euclid(HOUR), ms - ms.rem_euclid(HOUR) - 1] {
                    let time = Timestamp(probe);
                    let Some(chrono_local) = local(time, zone) else {
                        continue;
                    };
                    let day = i64::from(chrono_local.date_naive().num_days_from_ce());
                    let minute = (chrono_local.hour() * 60 + chrono_local.minute()) as u16;
                    // Twice: computed, then from the cache.
                    for _ in 0..2 {
                        assert_eq!(local_day(time, zone), day, "{zone} {probe}");
                        assert_eq!(local_minute_of_day(time, zone), minute, "{zone} {probe}");
                    }
                }
            }
        }
    }

    #[test]
    fn cached_periods_and_offsets_agree_with_chrono() {
        use crate::config::Period;
        // What `period_of` computed before its dates came from the cached
        // offsets and its ends from the cache.
        fn uncached(time: Timestamp, period: Period, zone: Tz) -> Option<(i64, Timestamp)> {
            let date = local(time, zone)?.date_naive();
            let (year, month0) = (date.year(), date.month0() as i32);
            let (index, end_year, end_month0) = match period {
                Period::Month => (i64::from(year) * 12 + i64::from(month0), year, month0 + 1),
                Period::Quarter => {
                    let quarter = month0 / 3;
                    (
                        i64::from(year) * 4 + i64::from(quarter),
                        year,
                        (quarter + 1) * 3,
                    )
                }
                Period::Year => (i64::from(year), year + 1, 0),
            };
            let (end_year, end_month0) = (end_year + end_month0 / 12, end_month0 % 12);
            let end_date = NaiveDate::from_ymd_opt(end_year, end_month0 as u32 + 1, 1)?;
            Some((index, at_local(end_date, 0, zone)?))
        }
        let mut state: u64 = 7;
        let zones = [
            "UTC",
            "America/New_York",
            "Asia/Shanghai",
            "Australia/Lord_Howe",
        ];
        for _ in 0..2_000 {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            // 1960 .. 2040, to the millisecond.
            let ms = -315_619_200_000 + (state >> 20) as i64 % 2_524_608_000_000;
            for zone in zones.map(|name| name.parse::<Tz>().unwrap()) {
                let time = Timestamp(ms);
                let chrono_offset = local(time, zone)
                    .map(|l| i64::from(chrono::Offset::fix(l.offset()).local_minus_utc()) * 1000);
                assert_eq!(utc_offset_ms(time, zone), chrono_offset.unwrap_or(0));
                for period in [Period::Month, Period::Quarter, Period::Year] {
                    // Twice: computed, then from the cache.
                    for _ in 0..2 {
                        assert_eq!(
                            period_of(time, period, zone),
                            uncached(time, period, zone),
                            "{zone} {ms} {period:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn instants_beyond_the_calendar_do_not_panic() {
        for time in [
            Timestamp(i64::MIN),
            Timestamp(i64::MAX),
            Timestamp::MIN,
            Timestamp::MAX,
        ] {
            let _ = local_day(time, Tz::UTC);
            let _ = local_minute_of_day(time, Tz::Asia__Tokyo);
            let _ = period_of(time, crate::config::Period::Month, Tz::Asia__Tokyo);
            let _ = utc_offset_ms(time, Tz::America__New_York);
        }
    }

    #[test]
    fn offsets_change_at_the_transition_not_the_hour() {
        // Europe/Berlin left summer time at 2026-10-25T01:00:00Z.
        let zone: Tz = "Europe/Berlin".parse().unwrap();
        assert_eq!(
            local_minute_of_day(at("2026-10-25T00:59:59Z"), zone),
            2 * 60 + 59
        );
        assert_eq!(
            local_minute_of_day(at("2026-10-25T01:00:00Z"), zone),
            2 * 60
        );
        // Lord Howe moves by half an hour.
        let zone: Tz = "Australia/Lord_Howe".parse().unwrap();
        let before = local_minute_of_day(at("2026-04-04T14:59:00Z"), zone);
        let after = local_minute_of_day(at("2026-04-04T15:00:00Z"), zone);
        assert_eq!((before, after), (119, 90));
        // St John's changes at 05:30 UTC, in the middle of a UTC hour.
        let zone: Tz = "America/St_Johns".parse().unwrap();
        for _ in 0..2 {
            let before = local_minute_of_day(at("2026-03-08T05:29:00Z"), zone);
            let after = local_minute_of_day(at("2026-03-08T05:30:00Z"), zone);
            assert_eq!((before, after), (60 + 59, 3 * 60));
        }
    }

    #[test]
    fn month_day_formats() {
        assert_eq!(parse_month_day("1990-07-04"), Some((7, 4)));
        assert_eq!(parse_month_day("07-04"), Some((7, 4)));
        assert_eq!(parse_month_day("02-30"), None);
        assert_eq!(parse_month_day("soon"), None);
    }
}
