//! Unit tests of `cron.rs`.

use super::*;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

#[test]
fn five_and_six_field_expressions() {
    let five = parse("*/5 * * * *").unwrap();
    let z = InZone::new(Utc);
    assert_eq!(
        z.next_after(&five, at("2026-01-01T10:02:30Z")),
        Some(at("2026-01-01T10:05:00Z"))
    );
    let six = parse("*/10 * * * * *").unwrap();
    assert_eq!(
        z.next_after(&six, at("2026-01-01T10:02:30Z")),
        Some(at("2026-01-01T10:02:40Z"))
    );
    // Strictly after; the last tick at or before includes `t`.
    assert_eq!(
        z.next_after(&six, at("2026-01-01T10:02:40Z")),
        Some(at("2026-01-01T10:02:50Z"))
    );
    assert_eq!(
        z.last_until(&six, at("2026-01-01T10:02:40Z")),
        Some(at("2026-01-01T10:02:40Z"))
    );
    // Ticks are whole seconds whatever the fraction of the time they are computed from.
    assert_eq!(
        z.next_after(&six, at("2026-01-01T10:02:40.292Z")),
        Some(at("2026-01-01T10:02:50Z"))
    );
    assert_eq!(
        z.last_until(&six, at("2026-01-01T10:02:49.999Z")),
        Some(at("2026-01-01T10:02:40Z"))
    );
    assert!(parse("not cron").is_err());
    assert!(parse("* * * *").is_err());
}

#[test]
fn ticks_follow_the_time_zone() {
    let nine = parse("0 9 * * *").unwrap();
    let plus2 = InZone::new(chrono::FixedOffset::east_opt(2 * 3600).unwrap());
    assert_eq!(
        plus2.next_after(&nine, at("2026-01-01T00:00:00Z")),
        Some(at("2026-01-01T07:00:00Z"))
    );
    assert_eq!(
        InZone::new(Utc).next_after(&nine, at("2026-01-01T00:00:00Z")),
        Some(at("2026-01-01T09:00:00Z"))
    );
    assert_eq!(plus2.name(), "+02:00");
    assert_eq!(InZone::new(Utc).name(), "UTC");
}

/// Every tick of `cron` in `zone` strictly after `from` up to `to`, by `next_after`.
fn ticks(zone: &dyn Zone, cron: &Cron, from: &str, to: &str) -> Vec<DateTime<Utc>> {
    let (mut t, to) = (at(from), at(to));
    let mut out = Vec::new();
    while let Some(next) = zone.next_after(cron, t) {
        assert!(next > t, "next tick {next} after {t} is not later");
        if next > to {
            break;
        }
        out.push(next);
        t = next;
    }
    out
}

/// 2026-10-25 in Paris: 03:00 CEST (01:00 UTC) goes back to 02:00 CET, so 02:00-03:00
/// local happens twice, 00:00-01:00 UTC and 01:00-02:00 UTC.
#[test]
fn every_n_minutes_ticks_through_the_repeated_autumn_hour() {
    let paris = InZone::new(chrono_tz::Europe::Paris);
    let five = parse("*/5 * * * *").unwrap();
    let got = ticks(
        &paris,
        &five,
        "2026-10-24T23:50:00Z",
        "2026-10-25T02:10:00Z",
    );
    let want: Vec<DateTime<Utc>> = (1..=28)
        .map(|i| at("2026-10-24T23:50:00Z") + chrono::TimeDelta::minutes(5 * i))
        .collect();
    assert_eq!(
        got, want,
        "every 5 minutes of UTC, the repeated hour included"
    );
    // From inside the repeated hour (its second pass), the next tick is ahead, not the
    // first pass's tick of the same wall time.
    assert_eq!(
        paris.next_after(&five, at("2026-10-25T01:30:00Z")),
        Some(at("2026-10-25T01:35:00Z"))
    );
    assert_eq!(
        paris.next_after(&five, at("2026-10-25T00:57:00Z")),
        Some(at("2026-10-25T01:00:00Z"))
    );
    assert_eq!(
        paris.last_until(&five, at("2026-10-25T01:32:00Z")),
        Some(at("2026-10-25T01:30:00Z"))
    );
    let hourly_at_10 = parse("10 * * * *").unwrap();
    assert_eq!(
        paris.last_until(&hourly_at_10, at("2026-10-25T01:01:00Z")),
        Some(at("2026-10-25T00:10:00Z"))
    );
    // A job at a fixed time of day runs once that night: at its first occurrence.
    let at_230 = parse("30 2 * * *").unwrap();
    assert_eq!(
        ticks(
            &paris,
            &at_230,
            "2026-10-24T12:00:00Z",
            "2026-10-26T12:00:00Z"
        ),
        [at("2026-10-25T00:30:00Z"), at("2026-10-26T01:30:00Z")]
    );
    assert_eq!(
        paris.next_after(&at_230, at("2026-10-25T01:20:00Z")),
        Some(at("2026-10-26T01:30:00Z"))
    );
    // Spring: 02:00 CET jumps to 03:00 CEST; every 5 minutes of UTC still ticks, and the
    // fixed-time job missing that night runs right after the gap.
    assert_eq!(
        ticks(
            &paris,
            &five,
            "2026-03-29T00:50:00Z",
            "2026-03-29T01:10:00Z"
        ),
        [
            at("2026-03-29T00:55:00Z"),
            at("2026-03-29T01:00:00Z"),
            at("2026-03-29T01:05:00Z"),
            at("2026-03-29T01:10:00Z")
        ]
    );
    assert_eq!(
        paris.next_after(&at_230, at("2026-03-28T12:00:00Z")),
        Some(at("2026-03-29T01:00:00Z"))
    );
}
