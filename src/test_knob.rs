//! Delays that end-to-end tests put into a window between a decision and a
//! step (a user's write landing there every time instead of by chance).
//! Each is named by an environment variable `CLOUD_TEST_…_MS`, read once;
//! none is ever set outside tests.

use std::sync::OnceLock;
use std::time::Duration;

/// Longest delay a knob can ask for.
const MAX_MS: u64 = 10_000;

/// Sleeps for the milliseconds (at most 10 s) the environment variable
/// `name` holds, read once into `cell` (a `static` of the caller's, one per
/// knob); returns at once when it is unset or not a number.
pub fn pause(cell: &OnceLock<Option<Duration>>, name: &str) {
    let delay = cell.get_or_init(|| {
        let ms: u64 = std::env::var(name).ok()?.trim().parse().ok()?;
        Some(Duration::from_millis(ms.min(MAX_MS)))
    });
    if let Some(delay) = delay {
        std::thread::sleep(*delay);
    }
}
