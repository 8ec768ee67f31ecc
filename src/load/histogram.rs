//! A log-linear latency histogram in microseconds: fixed memory, ~3% precision,
//! mergeable across load processes through a one-line text form.

/// Sub-buckets per power of two (precision 1/32, about 3%).
const SUB_BITS: u32 = 5;
const SUB: u64 = 1 << SUB_BITS;
/// Enough buckets for any `u64` microsecond value.
const BUCKETS: usize = ((64 - SUB_BITS as usize) + 1) * SUB as usize;

/// Counts of values (microseconds) in buckets whose width grows with the value.
#[derive(Debug, Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

/// Why a histogram's text form did not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistogramParseError {
    /// A `bucket:count` pair is malformed or the bucket is out of range.
    BadPair,
}

impl std::fmt::Display for HistogramParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("histogram text is not `max;bucket:count,...`")
    }
}

impl std::error::Error for HistogramParseError {}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

fn index_of(value: u64) -> usize {
    if value < SUB {
        return value as usize;
    }
    let msb = 63 - value.leading_zeros();
    let shift = msb - SUB_BITS;
    ((shift as u64 + 1) * SUB + ((value >> shift) - SUB)) as usize
}

/// The smallest value that lands in bucket `index`.
fn lower_bound(index: usize) -> u64 {
    let index = index as u64;
    if index < SUB {
        return index;
    }
    let shift = index / SUB - 1;
    (SUB + index % SUB) << shift
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Histogram {
        Histogram {
            counts: vec![0; BUCKETS],
            total: 0,
            max: 0,
        }
    }

    /// Records one value.
    pub fn record(&mut self, micros: u64) {
        self.counts[index_of(micros)] += 1;
        self.total += 1;
        self.max = self.max.max(micros);
    }

    /// Values recorded.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The largest value recorded (exact).
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The value at quantile `q` (0.0..=1.0): the upper edge of the bucket
    /// holding the rank, capped at the exact maximum; 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let upper = lower_bound(i + 1).saturating_sub(1);
                return upper.min(self.max);
            }
        }
        self.max
    }

    /// Adds another histogram's counts to this one.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    /// One-line text form: `max;bucket:count,bucket:count,...` (non-empty buckets).
    pub fn to_text(&self) -> String {
        let pairs: Vec<String> = self
            .counts
            .iter()
            .enumerate()
            .filter(|(_, &c)| c > 0)
            .map(|(i, c)| format!("{i}:{c}"))
            .collect();
        format!("{};{}", self.max, pairs.join(","))
    }

    /// Parses [`Histogram::to_text`]'s output.
    ///
    /// # Errors
    /// [`HistogramParseError::BadPair`] for anything malformed.
    pub fn from_text(text: &str) -> Result<Histogram, HistogramParseError> {
        let mut h = Histogram::new();
        let (max, pairs) = text
            .trim()
            .split_once(';')
            .ok_or(HistogramParseError::BadPair)?;
        h.max = max.parse().map_err(|_| HistogramParseError::BadPair)?;
        for pair in pairs.split(',').filter(|p| !p.is_empty()) {
            let (i, c) = pair.split_once(':').ok_or(HistogramParseError::BadPair)?;
            let i: usize = i.parse().map_err(|_| HistogramParseError::BadPair)?;
            let c: u64 = c.parse().map_err(|_| HistogramParseError::BadPair)?;
            let slot = h.counts.get_mut(i).ok_or(HistogramParseError::BadPair)?;
            *slot += c;
            h.total += c;
        }
        Ok(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_tight() {
        for v in [0u64, 1, 31, 32, 33, 63, 64, 1000, 123_456, u64::MAX / 3] {
            let i = index_of(v);
            assert!(lower_bound(i) <= v, "{v}");
            assert!(lower_bound(i + 1) > v, "{v}");
            assert!(lower_bound(i + 1) - lower_bound(i) <= v / 16 + 1, "{v}");
        }
        assert!(index_of(u64::MAX) < BUCKETS);
    }

    #[test]
    fn quantiles_and_text_round_trip() {
        let mut h = Histogram::new();
        for v in 1..=1000 {
            h.record(v);
        }
        let p50 = h.quantile(0.5);
        assert!((485..=516).contains(&p50), "{p50}");
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
    }
}
