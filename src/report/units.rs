//! Numbers as people read them in log lines and messages: durations, and counts with
//! their nouns.

use std::time::Duration;

/// A duration as people read it in a log line: `250ms`, `4.2s`, `5m0s`, `2h30m`, `3d4h`,
/// `100 years`. Every wait and limit in a message goes through here, so a far-future wait
/// reads as what it is rather than as millions of minutes.
pub fn human(d: Duration) -> String {
    const MINUTE: u64 = 60;
    const HOUR: u64 = 60 * MINUTE;
    const DAY: u64 = 24 * HOUR;
    /// A year of 365.25 days, as humantime reads `1y`.
    const YEAR: u64 = DAY * 1461 / 4;
    let secs = d.as_secs();
    match secs {
        0 => format!("{}ms", d.as_millis()),
        1..MINUTE => format!("{:.1}s", d.as_secs_f64()),
        MINUTE..HOUR => format!("{}m{}s", secs / MINUTE, secs % MINUTE),
        HOUR..DAY => format!("{}h{}m", secs / HOUR, secs % HOUR / MINUTE),
        DAY..YEAR => format!("{}d{}h", secs / DAY, secs % DAY / HOUR),
        _ => {
            let years = format!("{:.1}", secs as f64 / YEAR as f64);
            format!("{} years", years.trim_end_matches(".0"))
        }
    }
}

/// `n` with its noun, singular or plural as `n` asks: "1 record", "2 records".
pub fn counted(n: u64, one: &str, many: &str) -> String {
    match n {
        1 => format!("1 {one}"),
        n => format!("{n} {many}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_read_humanly_from_milliseconds_to_a_century() {
        let cases = [
            (Duration::from_millis(250), "250ms"),
            (Duration::from_millis(4200), "4.2s"),
            (Duration::from_secs(300), "5m0s"),
            (Duration::from_secs(7200), "2h0m"),
            (Duration::from_secs(9000), "2h30m"),
            (Duration::from_secs(3 * 86_400 + 4 * 3600), "3d4h"),
            (Duration::from_secs(47_336_400), "1.5 years"),
            (Duration::from_secs(3_155_760_000), "100 years"),
            (Duration::MAX, "584542046090.6 years"),
        ];
        for (wait, shown) in cases {
            assert_eq!(human(wait), shown, "{wait:?}");
        }
    }

    /// The page lines count with indicatif's separators; this holds them to "1,000".
    #[test]
    fn counts_in_page_lines_separate_thousands() {
        let cases = [
            (0, "0"),
            (999, "999"),
            (1000, "1,000"),
            (1234567, "1,234,567"),
        ];
        for (n, text) in cases {
            assert_eq!(indicatif::HumanCount(n).to_string(), text);
        }
    }
}
