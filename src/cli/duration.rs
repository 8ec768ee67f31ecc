//! The one parser of every duration option of the three binaries
//! (`PULLING_RATE`, the server's timeouts, `--keep-versions` in days,
//! `cloud-load`'s intervals): text to a [`Duration`] inside fixed bounds,
//! so that no value typed on a command line can panic a conversion or a
//! clock addition later (outside tester breaker15 F13: `1e20` did).

use std::fmt;
use std::time::Duration;

/// The largest duration any option takes: 100 Julian years
/// (3,155,760,000 s). Far below what `Instant`/`SystemTime` arithmetic can
/// hold (about 292 billion years), and longer than anything "forever" can
/// mean for a timeout, a retention or an interval; a larger value is
/// refused with this bound in the message rather than clamped, so the
/// program never runs with a value other than the one typed.
pub const MAX_SECS: u64 = 3_155_760_000;

/// The smallest duration the server's and `cloud-load`'s options take:
/// 1 ms. Below it a value rounds to nothing in the millisecond timers
/// (4e-324 would become a zero interval: a busy loop).
pub const MIN_SECS: f64 = 0.001;

/// The smallest `PULLING_RATE`: 0.1 s. The server's notifications already
/// trigger a pull at once, so the rate is only the fallback cadence; each
/// pull is a round trip and a `connectionLog.txt` line on the server, and
/// 0.1 s (10 a second, ~130 MB of log a day from one device) is the most
/// one device may ask for. The tests' fastest rate is 0.2 s.
pub const MIN_PULL_SECS: f64 = 0.1;

/// Seconds in a day, for options given in days.
const DAY_SECS: f64 = 86_400.0;

/// The unit an option is typed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Seconds (fractions allowed).
    Seconds,
    /// Days of 86,400 s (fractions allowed), `cloud-server --keep-versions`.
    Days,
}

impl Unit {
    fn name(self) -> &'static str {
        match self {
            Unit::Seconds => "seconds",
            Unit::Days => "days",
        }
    }

    fn secs_per_unit(self) -> f64 {
        match self {
            Unit::Seconds => 1.0,
            Unit::Days => DAY_SECS,
        }
    }
}

/// What a duration option accepts: its unit and the smallest value in
/// seconds (the largest is [`MAX_SECS`] for all).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rule {
    /// The unit the value is typed in.
    pub unit: Unit,
    /// The smallest accepted value, in seconds (> 0).
    pub min_secs: f64,
}

/// The server's timeouts and intervals, `export --wait`, `cloud-load`'s.
pub const SECONDS: Rule = Rule {
    unit: Unit::Seconds,
    min_secs: MIN_SECS,
};

/// `cloud-server --keep-versions`.
pub const DAYS: Rule = Rule {
    unit: Unit::Days,
    min_secs: MIN_SECS,
};

/// The client's `PULLING_RATE`.
pub const PULL: Rule = Rule {
    unit: Unit::Seconds,
    min_secs: MIN_PULL_SECS,
};

/// Why a value is not a duration an option takes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DurationError {
    /// Not a number, or zero, negative, infinite or NaN.
    NotPositive(Unit),
    /// Positive but below the rule's minimum (named in seconds whatever
    /// the unit: 1 ms in days is an unreadable fraction).
    TooSmall(Rule),
    /// Above [`MAX_SECS`].
    TooLarge(Unit),
}

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            DurationError::NotPositive(unit) => write!(
                f,
                "not a positive number of {} (fractions allowed, e.g. 0.5)",
                unit.name()
            ),
            DurationError::TooSmall(rule) => {
                write!(f, "too small: at least {} seconds", rule.min_secs)
            }
            DurationError::TooLarge(unit) => {
                let max = MAX_SECS as f64 / unit.secs_per_unit();
                write!(f, "too large: at most {max} {} (100 years)", unit.name())
            }
        }
    }
}

impl std::error::Error for DurationError {}

/// `text` as a duration under `rule`: a decimal number (fractions and
/// exponents allowed, as Rust's `f64` parses them) of `rule.unit`, at
/// least `rule.min_secs` and at most [`MAX_SECS`] seconds once converted.
///
/// # Errors
/// [`DurationError`]: not a positive finite number, below the minimum,
/// above the maximum.
pub fn parse(text: &str, rule: Rule) -> Result<Duration, DurationError> {
    let value = match text.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => v,
        _ => return Err(DurationError::NotPositive(rule.unit)),
    };
    // Compared in the typed unit, so a huge value never overflows to inf
    // before the check.
    let per_unit = rule.unit.secs_per_unit();
    if value > MAX_SECS as f64 / per_unit {
        return Err(DurationError::TooLarge(rule.unit));
    }
    let secs = value * per_unit;
    if secs < rule.min_secs {
        return Err(DurationError::TooSmall(rule));
    }
    Duration::try_from_secs_f64(secs).map_err(|_| DurationError::TooLarge(rule.unit))
}

/// [`parse`] under [`SECONDS`], for clap's `value_parser`.
///
/// # Errors
/// The text clap shows after `invalid value 'X' for '--opt <SECS>': `.
pub fn secs(text: &str) -> Result<Duration, String> {
    parse(text, SECONDS).map_err(|e| e.to_string())
}

/// [`parse`] under [`DAYS`], for clap's `value_parser`.
///
/// # Errors
/// As [`secs`].
pub fn days(text: &str) -> Result<Duration, String> {
    parse(text, DAYS).map_err(|e| e.to_string())
}

/// [`parse`] under [`PULL`], for clap's `value_parser` (`PULLING_RATE`).
///
/// # Errors
/// As [`secs`].
pub fn pull_secs(text: &str) -> Result<Duration, String> {
    parse(text, PULL).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::{Instant, SystemTime};

    /// The tester's values and their neighbours, one table.
    #[test]
    fn table() {
        let max = Duration::from_secs(MAX_SECS);
        let cases: &[(&str, Rule, Result<Duration, DurationError>)] = &[
            ("1", SECONDS, Ok(Duration::from_secs(1))),
            ("0.5", PULL, Ok(Duration::from_millis(500))),
            (" 2 ", SECONDS, Ok(Duration::from_secs(2))),
            ("1e20", PULL, Err(DurationError::TooLarge(Unit::Seconds))),
            (
                "18446744073709551616",
                PULL,
                Err(DurationError::TooLarge(Unit::Seconds)),
            ),
            (
                "18446744073709551615",
                SECONDS,
                Err(DurationError::TooLarge(Unit::Seconds)),
            ),
            ("1e15", DAYS, Err(DurationError::TooLarge(Unit::Days))),
            ("36525", DAYS, Ok(max)),
            ("36525.0001", DAYS, Err(DurationError::TooLarge(Unit::Days))),
            ("3155760000", SECONDS, Ok(max)),
            (
                "3155760001",
                SECONDS,
                Err(DurationError::TooLarge(Unit::Seconds)),
            ),
            ("0.0001", DAYS, Ok(Duration::from_secs_f64(8.64))),
            ("1e-9", PULL, Err(DurationError::TooSmall(PULL))),
            ("4e-324", PULL, Err(DurationError::TooSmall(PULL))),
            ("4e-324", SECONDS, Err(DurationError::TooSmall(SECONDS))),
            ("0.099", PULL, Err(DurationError::TooSmall(PULL))),
            ("0.1", PULL, Ok(Duration::from_millis(100))),
            ("0.001", SECONDS, Ok(Duration::from_millis(1))),
            ("0.005", SECONDS, Ok(Duration::from_millis(5))),
            ("0", SECONDS, Err(DurationError::NotPositive(Unit::Seconds))),
            (
                "-3",
                SECONDS,
                Err(DurationError::NotPositive(Unit::Seconds)),
            ),
            ("inf", DAYS, Err(DurationError::NotPositive(Unit::Days))),
            (
                "NaN",
                SECONDS,
                Err(DurationError::NotPositive(Unit::Seconds)),
            ),
            ("fast", PULL, Err(DurationError::NotPositive(Unit::Seconds))),
            ("", PULL, Err(DurationError::NotPositive(Unit::Seconds))),
        ];
        for (text, rule, want) in cases {
            assert_eq!(&parse(text, *rule), want, "{text:?} under {rule:?}");
        }
    }

    #[test]
    fn messages_name_the_bound() {
        assert_eq!(
            pull_secs("1e20").unwrap_err(),
            "too large: at most 3155760000 seconds (100 years)"
        );
        assert_eq!(
            days("1e15").unwrap_err(),
            "too large: at most 36525 days (100 years)"
        );
        assert_eq!(
            pull_secs("1e-9").unwrap_err(),
            "too small: at least 0.1 seconds"
        );
        assert_eq!(
            secs("4e-324").unwrap_err(),
            "too small: at least 0.001 seconds"
        );
        assert_eq!(
            secs("x").unwrap_err(),
            "not a positive number of seconds (fractions allowed, e.g. 0.5)"
        );
    }

    /// Whatever is accepted can be added to both clocks (what the programs
    /// do with it) without a panic.
    fn usable(d: Duration) {
        assert!(d <= Duration::from_secs(MAX_SECS));
        assert!(d >= Duration::from_millis(1));
        assert!(Instant::now().checked_add(d).is_some());
        assert!(SystemTime::now().checked_add(d).is_some());
        assert!(SystemTime::now().checked_sub(d).is_some());
    }

    fn rules() -> impl Strategy<Value = Rule> {
        prop_oneof![Just(SECONDS), Just(DAYS), Just(PULL)]
    }

    proptest! {
        /// Any text: an answer, never a panic; an accepted one is usable.
        #[test]
        fn any_text(text in "\\PC{0,30}", rule in rules()) {
            if let Ok(d) = parse(&text, rule) {
                usable(d);
            }
        }

        /// Any number as Rust prints it (every magnitude, both signs,
        /// subnormals, infinities): accepted exactly when inside the
        /// bounds, and then the same amount of time.
        #[test]
        fn any_float(bits in any::<u64>(), rule in rules(), exp in any::<bool>()) {
            let v = f64::from_bits(bits);
            let text = if exp { format!("{v:e}") } else { format!("{v}") };
            let secs = v * rule.unit.secs_per_unit();
            let inside = v.is_finite()
                && v > 0.0
                && v <= MAX_SECS as f64 / rule.unit.secs_per_unit()
                && secs >= rule.min_secs;
            match parse(&text, rule) {
                Ok(d) => {
                    prop_assert!(inside, "{text} accepted");
                    usable(d);
                    prop_assert!((d.as_secs_f64() - secs).abs() <= secs * 1e-12 + 1e-9);
                }
                Err(_) => prop_assert!(!inside, "{text} refused"),
            }
        }

        /// Whole numbers of any size, as a user types "forever".
        #[test]
        fn any_integer(n in any::<u128>(), rule in rules()) {
            let text = n.to_string();
            let fits = n as f64 <= MAX_SECS as f64 / rule.unit.secs_per_unit();
            match parse(&text, rule) {
                Ok(d) => { prop_assert!(fits && n > 0); usable(d); }
                Err(e) => prop_assert!(
                    n == 0 || !fits,
                    "{text}: {e}"
                ),
            }
        }
    }
}
