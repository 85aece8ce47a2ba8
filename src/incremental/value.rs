//! The values an incremental mark is made of, compared by what they are: numbers exactly
//! (however many digits the API sends), RFC 3339 timestamps as instants (offsets
//! included), other strings as text.

use std::cmp::Ordering;
use std::time::Duration;

use jiff::Timestamp;
use serde_json::Value;

/// What kind of value a job's field holds; decided by the first value seen, kept in the
/// state, so a value of another kind is never compared with the mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Number,
    Timestamp,
    Text,
}

impl Kind {
    /// The kind as a message names what a value of it must be; with no kind yet, any
    /// kind a mark can be.
    pub fn describe(kind: Option<Kind>) -> &'static str {
        match kind {
            Some(Kind::Number) => "a number",
            Some(Kind::Timestamp) => "an RFC 3339 timestamp",
            Some(Kind::Text) => "a string",
            None => "a number or a string",
        }
    }
}

/// A field's value, ready to compare with others of its kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Comparable {
    Number(Decimal),
    Instant(Timestamp),
    Text(String),
}

impl Comparable {
    /// The value as a mark of `kind` compares it; with no kind yet, the kind it shows (a
    /// string that reads as an RFC 3339 timestamp is one). `None` for a value of another
    /// kind, `null`, an object or an array: such a record cannot be placed.
    pub fn of(value: &Value, kind: Option<Kind>) -> Option<Self> {
        match (value, kind) {
            (Value::Number(n), None | Some(Kind::Number)) => {
                Decimal::parse(&n.to_string()).map(Comparable::Number)
            }
            (Value::String(s), None) => Some(
                s.parse()
                    .map_or_else(|_| Comparable::Text(s.clone()), Comparable::Instant),
            ),
            (Value::String(s), Some(Kind::Timestamp)) => s.parse().ok().map(Comparable::Instant),
            (Value::String(s), Some(Kind::Text)) => Some(Comparable::Text(s.clone())),
            _ => None,
        }
    }

    /// The value as JSON, as a state keeps it; [`Comparable::of`] reads it back.
    pub fn raw(&self) -> Value {
        match self {
            Comparable::Number(n) => {
                serde_json::from_str(&n.to_string()).expect("a decimal's text is a JSON number")
            }
            Comparable::Instant(t) => Value::String(t.to_string()),
            Comparable::Text(s) => Value::String(s.clone()),
        }
    }

    pub fn kind(&self) -> Kind {
        match self {
            Comparable::Number(_) => Kind::Number,
            Comparable::Instant(_) => Kind::Timestamp,
            Comparable::Text(_) => Kind::Text,
        }
    }

    /// How `self` orders against `other`; `None` across kinds.
    pub fn compare(&self, other: &Self) -> Option<Ordering> {
        match (self, other) {
            (Comparable::Number(a), Comparable::Number(b)) => Some(a.cmp(b)),
            (Comparable::Instant(a), Comparable::Instant(b)) => Some(a.cmp(b)),
            (Comparable::Text(a), Comparable::Text(b)) => Some(a.cmp(b)),
            _ => None,
        }
    }

    /// Whether `self` is at or below `other` (false across kinds).
    pub fn at_or_below(&self, other: &Self) -> bool {
        self.compare(other).is_some_and(Ordering::is_le)
    }

    /// The value `lookback` before this one: a duration before a timestamp, a count below
    /// an integer.
    pub fn minus(&self, lookback: &Lookback) -> Result<Self, String> {
        match (self, lookback) {
            (Comparable::Instant(t), Lookback::Duration(d)) => jiff::SignedDuration::try_from(*d)
                .ok()
                .and_then(|d| t.checked_sub(d).ok())
                .map(Comparable::Instant)
                .ok_or_else(|| format!("{t} minus the lookback is before the year -9999")),
            (Comparable::Number(n), Lookback::Count(k)) => n
                .integer()
                .and_then(|n| n.checked_sub(*k))
                .map(|n| Comparable::Number(Decimal::from(n)))
                .ok_or_else(|| {
                    format!("--lookback {k} needs a whole-number mark within ±2^127, not {n}")
                }),
            (mark, Lookback::Duration(_)) => Err(format!(
                "a duration goes back from a timestamp, and the mark is {}: give --lookback \
                 a number (N)",
                mark.describe()
            )),
            (mark, Lookback::Count(_)) => Err(format!(
                "a count goes back from a number, and the mark is {}: give --lookback a \
                 duration with a unit (10m, 2h)",
                mark.describe()
            )),
        }
    }

    fn describe(&self) -> String {
        match self {
            Comparable::Number(n) => format!("the number {n}"),
            Comparable::Instant(t) => format!("the timestamp {t}"),
            Comparable::Text(s) => format!("the text {s:?}"),
        }
    }

    /// The value as `format` sends it to the API; `raw` is how the API sent the mark,
    /// when this is the mark itself rather than a point before it.
    pub fn since(&self, format: SinceFormat, raw: Option<&Value>) -> Result<String, String> {
        match (format, self) {
            (SinceFormat::Raw, _) => Ok(match (raw, self) {
                (Some(Value::String(s)), _) => s.clone(),
                (Some(other), _) => other.to_string(),
                (None, Comparable::Number(n)) => n.to_string(),
                (None, Comparable::Instant(t)) => t.to_string(),
                (None, Comparable::Text(s)) => s.clone(),
            }),
            (SinceFormat::Rfc3339, Comparable::Instant(t)) => Ok(t.to_string()),
            (SinceFormat::Epoch, Comparable::Instant(t)) => Ok(t.as_second().to_string()),
            (SinceFormat::EpochMs, Comparable::Instant(t)) => Ok(t.as_millisecond().to_string()),
            (_, mark) => Err(format!(
                "--since-format {} writes a timestamp, and the mark is {}: use --since-format raw",
                format.name(),
                mark.describe()
            )),
        }
    }
}

/// `--lookback`: how far before the mark a run reads again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookback {
    Duration(Duration),
    Count(i128),
}

impl Lookback {
    /// The lookback as named fields, for a checkpoint's identity: never its Debug text,
    /// which changes with the types.
    pub fn identity(&self) -> Value {
        match self {
            Lookback::Duration(d) => serde_json::json!({"nanoseconds": d.as_nanos().to_string()}),
            Lookback::Count(n) => serde_json::json!({"count": n.to_string()}),
        }
    }

    /// A whole number is a count (for numeric marks); anything else is a duration with a
    /// unit (`90s`, `10m`, `2h`), since a bare `3600` next to a timestamp mark would be a
    /// guess.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Ok(count) = s.parse::<i128>() {
            return match count {
                0.. => Ok(Lookback::Count(count)),
                _ => Err(format!("`{s}` is below 0")),
            };
        }
        match humantime::parse_duration(s) {
            Ok(d) if d <= crate::policy::deadline::LONGEST => Ok(Lookback::Duration(d)),
            _ => Err(format!(
                "`{s}` is neither a count (100) nor a duration with a unit (90s, 10m, 2h)"
            )),
        }
    }
}

/// `--since-format`: how the mark is written into `--since-param`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SinceFormat {
    /// As the API sent it (a number's digits, a string's text).
    Raw,
    /// An RFC 3339 timestamp in UTC (2026-01-01T08:00:00Z).
    Rfc3339,
    /// Whole seconds since 1970 (rounded down).
    Epoch,
    /// Milliseconds since 1970 (rounded down).
    EpochMs,
}

impl SinceFormat {
    pub fn name(self) -> &'static str {
        match self {
            SinceFormat::Raw => "raw",
            SinceFormat::Rfc3339 => "rfc3339",
            SinceFormat::Epoch => "epoch",
            SinceFormat::EpochMs => "epoch-ms",
        }
    }
}

/// A JSON number held exactly, as digits and a power of ten: APIs send ids past 2^64
/// and decimals a float would round, and the mark must never round down past a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decimal {
    negative: bool,
    /// Without leading or trailing zeros; empty for zero.
    digits: Vec<u8>,
    /// The value is `digits × 10^exponent`.
    exponent: i64,
}

impl Decimal {
    /// Reads a JSON number's text (`-12.50`, `1E21`); `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        let (negative, rest) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (mantissa, exp) = match rest.find(['e', 'E']) {
            Some(at) => (&rest[..at], rest[at + 1..].parse::<i64>().ok()?),
            None => (rest, 0),
        };
        let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let all = || int.bytes().chain(frac.bytes());
        if int.is_empty() || !all().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let mut digits: Vec<u8> = all().map(|b| b - b'0').skip_while(|d| *d == 0).collect();
        let mut exponent = exp.checked_sub(i64::try_from(frac.len()).ok()?)?;
        while digits.last() == Some(&0) {
            digits.pop();
            exponent = exponent.checked_add(1)?;
        }
        Some(Decimal {
            negative: negative && !digits.is_empty(),
            digits,
            exponent,
        })
    }

    /// The value as a whole number, when it is one that fits.
    fn integer(&self) -> Option<i128> {
        let mut n: i128 = 0;
        for d in &self.digits {
            n = n.checked_mul(10)?.checked_add(i128::from(*d))?;
        }
        for _ in 0..u32::try_from(self.exponent).ok()? {
            n = n.checked_mul(10)?;
        }
        Some(if self.negative { -n } else { n })
    }

    /// Where the leading digit sits (its power of ten, plus one), for zero-free values.
    fn magnitude(&self) -> i128 {
        i128::from(self.exponent) + self.digits.len() as i128
    }

    fn cmp_magnitude(&self, other: &Self) -> Ordering {
        match (self.digits.is_empty(), other.digits.is_empty()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Less,
            (false, true) => Ordering::Greater,
            (false, false) => (self.magnitude().cmp(&other.magnitude()))
                .then_with(|| self.digits.cmp(&other.digits)),
        }
    }
}

impl From<i128> for Decimal {
    fn from(n: i128) -> Self {
        Decimal::parse(&n.to_string()).expect("an integer's digits are a number")
    }
}

impl Ord for Decimal {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self.negative, other.negative) {
            (false, true) => Ordering::Greater,
            (true, false) => Ordering::Less,
            (false, false) => self.cmp_magnitude(other),
            (true, true) => other.cmp_magnitude(self),
        }
    }
}

impl PartialOrd for Decimal {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl std::fmt::Display for Decimal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(n) = self.integer() {
            return write!(f, "{n}");
        }
        let digits: String = self.digits.iter().map(|d| char::from(b'0' + d)).collect();
        let sign = if self.negative { "-" } else { "" };
        write!(f, "{sign}{digits}E{}", self.exponent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn value(v: Value) -> Comparable {
        Comparable::of(&v, None).unwrap()
    }

    fn number(text: &str) -> Value {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn timestamps_compare_as_instants_across_offsets() {
        let paris = value(json!("2026-01-01T10:00:00+02:00"));
        let utc = value(json!("2026-01-01T08:00:00Z"));
        assert_eq!(paris.kind(), Kind::Timestamp);
        assert_eq!(paris.compare(&utc), Some(Ordering::Equal));
        let later = value(json!("2026-01-01T08:00:00.001Z"));
        let earlier_text_later_instant = value(json!("2026-01-01T03:30:00-05:00"));
        assert_eq!(later.compare(&paris), Some(Ordering::Greater));
        // As text "2026-01-01T03…" sorts first; as an instant it is 08:30Z.
        assert_eq!(
            earlier_text_later_instant.compare(&later),
            Some(Ordering::Greater)
        );
        assert!(utc.at_or_below(&paris) && paris.at_or_below(&utc));
    }

    #[test]
    fn numbers_compare_exactly_past_what_floats_hold() {
        let cases = [
            (
                "12345678901234567890",
                "12345678901234567891",
                Ordering::Less,
            ),
            ("1E21", "999999999999999999999", Ordering::Greater),
            ("1.50", "1.5", Ordering::Equal),
            ("-0", "0", Ordering::Equal),
            ("-2", "-10", Ordering::Greater),
            ("0.1", "0.09999999999999999999", Ordering::Greater),
            ("100", "1e2", Ordering::Equal),
            ("-1.5", "1", Ordering::Less),
            ("0", "0.000001", Ordering::Less),
        ];
        for (a, b, order) in cases {
            assert_eq!(
                value(number(a)).compare(&value(number(b))),
                Some(order),
                "{a} vs {b}"
            );
        }
    }

    #[test]
    fn other_strings_compare_as_text_and_kinds_never_mix() {
        let a = value(json!("abc"));
        assert_eq!(a.kind(), Kind::Text);
        assert_eq!(a.compare(&value(json!("abd"))), Some(Ordering::Less));
        assert_eq!(value(json!("2026-01-01")).kind(), Kind::Text);
        assert_eq!(a.compare(&value(json!(5))), None);
        assert!(!a.at_or_below(&value(json!(5))));
        // Under a text mark, a timestamp-looking string is text too.
        let text = Comparable::of(&json!("2026-01-01T08:00:00Z"), Some(Kind::Text)).unwrap();
        assert_eq!(text.kind(), Kind::Text);
        for other in [json!(null), json!({"a": 1}), json!([1]), json!(true)] {
            assert_eq!(Comparable::of(&other, None), None, "{other}");
        }
        assert_eq!(Comparable::of(&json!("soon"), Some(Kind::Timestamp)), None);
        assert_eq!(Comparable::of(&json!("7"), Some(Kind::Number)), None);
        assert_eq!(Comparable::of(&json!(7), Some(Kind::Timestamp)), None);
    }

    #[test]
    fn lookback_goes_back_by_a_duration_or_a_count() {
        let mark = value(json!("2026-01-01T08:00:00Z"));
        let ten_minutes = Lookback::parse("10m").unwrap();
        assert_eq!(
            mark.minus(&ten_minutes).unwrap(),
            value(json!("2026-01-01T07:50:00Z"))
        );
        assert!(mark.minus(&Lookback::parse("100").unwrap()).is_err());
        let id = value(number("170141183460469231731687303715884105727"));
        assert_eq!(
            id.minus(&Lookback::Count(7)).unwrap(),
            value(number("170141183460469231731687303715884105720"))
        );
        assert!(value(number("1.5")).minus(&Lookback::Count(1)).is_err());
        assert!(id.minus(&ten_minutes).is_err());
        assert!(Lookback::parse("-3").is_err());
        assert!(Lookback::parse("soon").is_err());
    }

    #[test]
    fn the_since_value_takes_the_format_asked_for() {
        let mark = json!("2026-01-01T10:00:00.250+02:00");
        let t = value(mark.clone());
        assert_eq!(
            t.since(SinceFormat::Raw, Some(&mark)).unwrap(),
            "2026-01-01T10:00:00.250+02:00"
        );
        assert_eq!(
            t.since(SinceFormat::Rfc3339, None).unwrap(),
            "2026-01-01T08:00:00.25Z"
        );
        assert_eq!(t.since(SinceFormat::Epoch, None).unwrap(), "1767254400");
        assert_eq!(
            t.since(SinceFormat::EpochMs, None).unwrap(),
            "1767254400250"
        );
        let n = number("12345678901234567890");
        assert_eq!(
            value(n.clone()).since(SinceFormat::Raw, Some(&n)).unwrap(),
            "12345678901234567890"
        );
        assert_eq!(
            value(number("120")).since(SinceFormat::Raw, None).unwrap(),
            "120"
        );
        assert!(value(n).since(SinceFormat::Epoch, None).is_err());
    }
}
