//! The results table and its place in BENCHMARKS.md (between two markers, so
//! the parser figures and any other section stay as they are).

use crate::Ctx;
use std::path::Path;
use std::time::Duration;

const BEGIN: &str =
    "<!-- e2e:begin (written by `cargo bench --bench e2e`; edits here are replaced) -->";
const END: &str = "<!-- e2e:end -->";

/// One line of the table.
pub struct Row {
    pub figure: String,
    pub ours: String,
    pub rsync: String,
    pub ratio: String,
    pub target: String,
    /// Whether the target is met (None: no target or not measurable).
    pub met: Option<bool>,
}

impl Row {
    /// A figure without an rsync counterpart.
    pub fn ours(figure: &str, value: String, target: &str, met: Option<bool>) -> Row {
        Row {
            figure: figure.to_owned(),
            ours: value,
            rsync: String::new(),
            ratio: String::new(),
            target: target.to_owned(),
            met,
        }
    }

    /// A timing compared with rsync's (seconds; lower is better; target: ours ≤ rsync).
    pub fn versus(figure: &str, ours: Option<f64>, rsync: Option<f64>) -> Row {
        let f = |x: Option<f64>| x.map_or("failed".to_owned(), |v| format!("{v:.2} s"));
        let (ratio, met) = match (ours, rsync) {
            (Some(a), Some(b)) if b > 0.0 => (format!("{:.2}×", a / b), Some(a <= b)),
            _ => (String::new(), None),
        };
        Row {
            figure: figure.to_owned(),
            ours: f(ours),
            rsync: f(rsync),
            ratio,
            target: "≤ rsync".to_owned(),
            met,
        }
    }

    pub fn one_line(&self) -> String {
        format!(
            "{}: {} | rsync {} | {} | target {} {}",
            self.figure,
            self.ours,
            self.rsync,
            self.ratio,
            self.target,
            verdict(self.met)
        )
    }
}

fn verdict(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "met",
        Some(false) => "**missed**",
        None => "",
    }
}

fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_kib: u64 = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    format!(
        "{cores} cores ({cpu}), {:.1} GiB memory",
        mem_kib as f64 / 1024.0 / 1024.0
    )
}

fn utc_now() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// The Markdown section of this run.
pub fn section(ctx: &Ctx, versions: &[String], took: Duration) -> String {
    let mut s = String::new();
    s.push_str(BEGIN);
    s.push_str("\n## End to end (`cargo bench --bench e2e`)\n\n");
    s.push_str(&format!(
        "{} run of {}, {:.0} min; {}. Versions: {}. Timings are medians of {} run(s); server, load and clients share the machine and talk over loopback.\n\n",
        if ctx.plan.quick { "Quick (`--quick`, reduced sizes)" } else { "Full" },
        utc_now(),
        took.as_secs_f64() / 60.0,
        machine(),
        versions.join(", "),
        ctx.plan.runs
    ));
    s.push_str("| figure | CloudService | rsync | ratio | target | |\n|---|---|---|---|---|---|\n");
    for r in &ctx.rows {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            r.figure,
            r.ours,
            r.rsync,
            r.ratio,
            r.target,
            verdict(r.met)
        ));
    }
    if !ctx.notes.is_empty() {
        s.push_str("\nNotes:\n\n");
        for n in &ctx.notes {
            s.push_str(&format!("- {n}\n"));
        }
    }
    s.push_str(END);
    s.push('\n');
    s
}

/// Replaces this harness's section of `path` (or appends it), keeping the rest.
pub fn merge_into(path: &Path, section: &str) {
    let old = std::fs::read_to_string(path).unwrap_or_else(|_| "# Benchmarks\n".to_owned());
    let new = match (old.find(BEGIN), old.find(END)) {
        (Some(b), Some(e)) if e > b => {
            format!(
                "{}{}{}",
                &old[..b],
                section,
                old[e + END.len()..].trim_start_matches('\n')
            )
        }
        _ => format!("{}\n\n{}", old.trim_end(), section),
    };
    if let Err(e) = std::fs::write(path, new) {
        eprintln!("e2e: cannot write {}: {e}", path.display());
    }
}
