//! Segment calls as SDKs and Segment's own exports send them, from a
//! review of 2026-12-06: exported calls corrected once, numbers that are
//! not numbers, page and screen names, blank time zones.

use kairos_model::Event;

fn parse(json: &str) -> Event {
    Event::from_json(json.as_bytes()).unwrap_or_else(|e| panic!("{json}: {e}"))
}

/// A call exported by Segment (warehouse, S3, webhook destination) carries
/// the corrected `timestamp` plus the `originalTimestamp` it came from.
#[test]
fn segment_processed_call_is_not_corrected_twice() {
    // Client clock 1 h fast: original 11:00, sentAt 11:00:05, received 10:00:06.
    // Segment's corrected timestamp = 10:00:01.
    let event = parse(
        r#"{"type":"track","event":"X","userId":"u","messageId":"m",
            "originalTimestamp":"2026-11-23T11:00:00.000Z",
            "sentAt":"2026-11-23T11:00:05.000Z",
            "receivedAt":"2026-11-23T10:00:06.000Z",
            "timestamp":"2026-11-23T10:00:01.000Z"}"#,
    );
    assert_eq!(event.time.to_rfc3339(), "2026-11-23T10:00:01.000Z");
}

#[test]
fn non_numeric_strings_are_not_numbers() {
    for text in ["NaN", "nan", "inf", "Infinity", "-infinity", "1e400"] {
        let json = format!(
            r#"{{"type":"track","event":"Order Completed","userId":"u","timestamp":"2026-11-23T10:00:00Z","properties":{{"revenue":"{text}"}}}}"#
        );
        let event = parse(&json);
        let number = event.property_number("revenue");
        assert!(
            number.is_none_or(f64::is_finite),
            "{text:?} read as {number:?}"
        );
    }
}

/// Segment's page/screen `name` and `category` are top-level fields; the
/// mobile SDKs (analytics-swift, analytics-kotlin) and analytics.js' screen
/// never copy them into `properties`.
#[test]
fn screen_and_page_names_are_readable() {
    let screen = parse(
        r#"{"type":"screen","userId":"u","messageId":"m","timestamp":"2026-11-23T10:00:00Z","name":"Checkout","category":"Shop","properties":{"Feed Type":"private"}}"#,
    );
    assert_eq!(screen.property_text("name").as_deref(), Some("Checkout"));
    assert_eq!(screen.property_text("category").as_deref(), Some("Shop"));
    // A property the sender set wins.
    let page = parse(
        r#"{"type":"page","userId":"u","messageId":"m","timestamp":"2026-11-23T10:00:00Z","name":"Home","properties":{"name":"Home page"}}"#,
    );
    assert_eq!(page.property_text("name").as_deref(), Some("Home page"));
}

#[test]
fn blank_context_timezone_does_not_hide_the_trait() {
    let event = parse(
        r#"{"type":"identify","userId":"u","messageId":"m","timestamp":"2026-11-23T10:00:00Z","traits":{"timezone":"Asia/Tokyo"},"context":{"timezone":""}}"#,
    );
    assert_eq!(event.timezone.as_deref(), Some("Asia/Tokyo"));
}

#[test]
fn raw_sdk_call_is_still_corrected() {
    let event = parse(
        r#"{"type":"track","event":"X","userId":"u","messageId":"m",
            "timestamp":"2026-11-23T11:00:00.000Z",
            "sentAt":"2026-11-23T11:00:05.000Z",
            "receivedAt":"2026-11-23T10:00:06.000Z"}"#,
    );
    assert_eq!(event.time.to_rfc3339(), "2026-11-23T10:00:01.000Z");
}
