//! Latency histograms for the load generator, in microseconds: an
//! HdrHistogram (the `hdrhistogram` crate, Gil Tene's design) with 3
//! significant digits (0.1 % precision), auto-resizing up to any `u64`,
//! mergeable across load processes through a one-line text form (the
//! crate's V2 serialization, hex-encoded).

use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};

/// Significant decimal digits kept for every value (0.1 % precision).
const SIGNIFICANT_DIGITS: u8 = 3;

/// Counts of values (microseconds).
#[derive(Debug, Clone)]
pub struct Histogram(hdrhistogram::Histogram<u64>);

/// Why a histogram's text form did not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistogramParseError {
    /// Not hex, or not a V2-serialized histogram.
    BadText,
}

impl std::fmt::Display for HistogramParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("histogram text is not a hex-encoded V2 HdrHistogram")
    }
}

impl std::error::Error for HistogramParseError {}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Histogram {
        let mut h = hdrhistogram::Histogram::new(SIGNIFICANT_DIGITS)
            .expect("3 significant digits is a valid HdrHistogram precision");
        h.auto(true);
        Histogram(h)
    }

    /// Counts one value (µs).
    pub fn record(&mut self, micros: u64) {
        // Auto-resizing: recording any u64 succeeds.
        let _ = self.0.record(micros);
    }

    /// Values recorded.
    pub fn count(&self) -> u64 {
        self.0.len()
    }

    /// Largest value recorded (0 when empty).
    pub fn max(&self) -> u64 {
        self.0.max()
    }

    /// The value at quantile `q` (0..=1, clamped); 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.0.is_empty() {
            return 0;
        }
        self.0.value_at_quantile(q.clamp(0.0, 1.0))
    }

    /// Adds `other`'s counts to this one.
    pub fn merge(&mut self, other: &Histogram) {
        // Auto-resizing: adding never fails for lack of range.
        let _ = self.0.add(&other.0);
    }

    /// One line of hex (the V2 serialization), read by [`Histogram::from_text`].
    pub fn to_text(&self) -> String {
        let mut bytes = Vec::new();
        if V2Serializer::new().serialize(&self.0, &mut bytes).is_err() {
            return String::new();
        }
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Parses [`Histogram::to_text`]'s output.
    ///
    /// # Errors
    /// [`HistogramParseError::BadText`] for anything malformed.
    pub fn from_text(text: &str) -> Result<Histogram, HistogramParseError> {
        let text = text.trim().as_bytes();
        if !text.len().is_multiple_of(2) {
            return Err(HistogramParseError::BadText);
        }
        let bytes = text
            .chunks(2)
            .map(|pair| {
                std::str::from_utf8(pair)
                    .ok()
                    .and_then(|s| u8::from_str_radix(s, 16).ok())
                    .ok_or(HistogramParseError::BadText)
            })
            .collect::<Result<Vec<u8>, _>>()?;
        let mut h: hdrhistogram::Histogram<u64> = Deserializer::new()
            .deserialize(&mut bytes.as_slice())
            .map_err(|_| HistogramParseError::BadText)?;
        h.auto(true);
        Ok(Histogram(h))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_and_text_round_trip() {
        let mut h = Histogram::new();
        for v in 1..=1000 {
            h.record(v);
        }
        let p50 = h.quantile(0.5);
        assert!((499..=501).contains(&p50), "{p50}");
        assert_eq!(h.quantile(1.0), 1000);
        let back = Histogram::from_text(&h.to_text()).expect("parses");
        assert_eq!(back.count(), 1000);
        assert_eq!(back.quantile(0.99), h.quantile(0.99));
        let mut m = Histogram::new();
        m.merge(&back);
        m.merge(&h);
        assert_eq!(m.count(), 2000);
        assert_eq!(Histogram::new().quantile(0.5), 0);
        assert!(Histogram::from_text("x").is_err());
        assert!(Histogram::from_text("zz").is_err());
    }

    #[test]
    fn any_value_is_recorded_within_its_precision() {
        let mut h = Histogram::new();
        for v in [0u64, 1, 31, 1000, 123_456, 86_400_000_000, u64::MAX / 3] {
            h.record(v);
        }
        assert_eq!(h.count(), 7);
        let top = h.quantile(1.0);
        assert!(top.abs_diff(u64::MAX / 3) <= (u64::MAX / 3) / 1000, "{top}");
        let back = Histogram::from_text(&h.to_text()).expect("parses");
        assert_eq!(back.count(), 7);
    }
}
