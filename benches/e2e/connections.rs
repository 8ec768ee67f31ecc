//! Target 1 and the server half of target 6: many authenticated connections
//! held by two `cloud-load` processes (source addresses 127.0.0.2 and
//! 127.0.0.3), idle first, then pulling every 10 s.

use crate::common::{fds, rss_kib, threads, Proc};
use crate::report::Row;
use crate::util;
use crate::{bin, start_server, stop_server, Ctx};
use cloudservice::load::Report;
use std::process::Command;
use std::time::{Duration, Instant};

/// One shape of the connection test.
struct Shape {
    label: String,
    per_user: usize,
    server_args: Vec<&'static str>,
    /// New connections per second over both load processes.
    connect_rate: u32,
}

/// How long after setup the idle figures are read: past the server's default
/// 30 s actor retirement, so what remains is the cost of the connections.
const SETTLE: Duration = Duration::from_secs(35);
const IDLE_WINDOW: Duration = Duration::from_secs(10);

pub fn run_all(ctx: &mut Ctx) {
    let n = ctx.plan.conns;
    let shapes = [
        Shape {
            label: format!("{}×10", n / 10),
            per_user: 10,
            server_args: vec![],
            connect_rate: 1000,
        },
        Shape {
            label: format!("{}×1", n),
            per_user: 1,
            server_args: vec![],
            connect_rate: 1000,
        },
        Shape {
            label: format!("{}×10 (server --actor-idle 2, setup 200/s)", n / 10),
            per_user: 10,
            server_args: vec!["--actor-idle", "2"],
            connect_rate: 200,
        },
        Shape {
            label: format!("{}×1 (server --actor-idle 2, setup 200/s)", n),
            per_user: 1,
            server_args: vec!["--actor-idle", "2"],
            connect_rate: 200,
        },
    ];
    for shape in shapes {
        println!("e2e: connections {}", shape.label);
        run_shape(ctx, &shape);
    }
}

struct Samples {
    threads_max: u64,
    fds_max: u64,
    rss_max: u64,
}

impl Samples {
    fn new() -> Samples {
        Samples {
            threads_max: 0,
            fds_max: 0,
            rss_max: 0,
        }
    }

    fn take(&mut self, pid: u32) {
        self.threads_max = self.threads_max.max(threads(pid));
        self.fds_max = self.fds_max.max(fds(pid));
        self.rss_max = self.rss_max.max(rss_kib(pid));
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn run_shape(ctx: &mut Ctx, shape: &Shape) {
    let n = ctx.plan.conns;
    let measure = ctx.plan.measure_secs;
    let mut server = start_server(ctx, &shape.server_args);
    let pid = server.pid();
    std::thread::sleep(Duration::from_secs(1));
    let rss0 = rss_kib(pid);
    let go = ctx.scratch.path().join(format!("go-{}", ctx.rows.len()));
    let halves = [n - n / 2, n / 2];
    let mut loads = Vec::new();
    let mut summaries = Vec::new();
    for (i, &conns) in halves.iter().enumerate() {
        let users = (conns / shape.per_user).max(1);
        let summary = ctx.log_path("load-summary");
        let out = ctx.log_path("load");
        let mut cmd = Command::new(bin("cloud-load"));
        cmd.arg("127.0.0.1")
            .arg(server.port.to_string())
            .args(["-n", &conns.to_string(), "-u", &users.to_string()])
            .args([
                "-r",
                &ctx.plan.pull_secs.to_string(),
                "-d",
                &measure.to_string(),
            ])
            .args(["--source", &format!("127.0.0.{}", i + 2)])
            .args([
                "--connect-rate",
                &(shape.connect_rate / 2).max(1).to_string(),
            ])
            .args(["--setup-timeout", "240", "--reply-timeout", "10"])
            .arg("--go-file")
            .arg(&go)
            .arg("--summary")
            .arg(&summary);
        loads.push(Proc::spawn_to_files("cloud-load", cmd, &out));
        summaries.push(summary);
    }
    // Setup: wait for both loads to report, sampling the server.
    let mut setup = Samples::new();
    let deadline = Instant::now() + Duration::from_secs(300);
    while Instant::now() < deadline {
        let done = loads
            .iter_mut()
            .all(|l| l.stdout().contains("connected") || matches!(l.child.try_wait(), Ok(Some(_))));
        if done {
            break;
        }
        setup.take(pid);
        std::thread::sleep(Duration::from_millis(500));
    }
    let rss_setup = rss_kib(pid);
    let threads_setup = threads(pid);
    std::thread::sleep(SETTLE);
    let rss_idle = rss_kib(pid);
    let threads_idle = threads(pid);
    let fds_idle = fds(pid);
    let cpu_idle = util::cpu_percent(pid, IDLE_WINDOW);
    let _ = std::fs::write(&go, b"go");
    let t0 = util::cpu_ticks(pid);
    let start = Instant::now();
    let mut pulling = Samples::new();
    while start.elapsed() < Duration::from_secs(measure) {
        pulling.take(pid);
        std::thread::sleep(Duration::from_secs(1));
    }
    let cpu_pulling = (util::cpu_ticks(pid).saturating_sub(t0)) as f64
        / util::clk_tck()
        / start.elapsed().as_secs_f64()
        * 100.0;
    let mut report = Report::default();
    for (load, summary) in loads.iter_mut().zip(&summaries) {
        load.wait_exit(Duration::from_secs(90));
        match std::fs::read_to_string(summary) {
            Ok(text) => report.merge(&Report::from_kv(&text)),
            Err(_) => ctx.note(format!(
                "{}: a cloud-load process (pid {}) ended without its report (killed from outside?)",
                shape.label,
                load.pid()
            )),
        }
    }
    stop_server(&mut server);
    let l = &shape.label;
    let held = report.held;
    let errors = report.error_total();
    ctx.row(Row::ours(
        &format!("{l}: connections held after pulling (after setup; setup time)"),
        format!(
            "{held} ({}; {:.0} s)",
            report.connected,
            report.setup.as_secs_f64()
        ),
        &format!("{n}, no errors"),
        Some(held == n && errors == 0),
    ));
    let per_conn = (rss_idle as f64 - rss0 as f64) / held.max(1) as f64;
    ctx.row(Row::ours(
        &format!("{l}: server RSS per idle connection (idle server {:.1} MiB → {:.1} MiB after setup → {:.1} MiB {} s later)", mib(rss0), mib(rss_setup), mib(rss_idle), SETTLE.as_secs()),
        format!("{per_conn:.2} KiB"),
        "≤ 1 KiB",
        Some(held > 0 && per_conn <= 1.0),
    ));
    ctx.row(Row::ours(
        &format!(
            "{l}: server threads (peak during setup / settled / peak while pulling); open fds peak"
        ),
        format!(
            "{} / {} / {}; {}",
            setup.threads_max.max(threads_setup),
            threads_idle,
            pulling.threads_max,
            setup.fds_max.max(fds_idle).max(pulling.fds_max)
        ),
        "not one busy thread per user",
        Some(pulling.threads_max <= 64 && threads_idle <= 64),
    ));
    ctx.row(Row::ours(
        &format!("{l}: server CPU with {held} idle connections"),
        format!("{cpu_idle:.2} %"),
        "< 1 %",
        Some(cpu_idle < 1.0),
    ));
    ctx.row(Row::ours(
        &format!("{l}: pulls/s (server CPU; peak RSS while pulling)"),
        format!(
            "{:.0} ({cpu_pulling:.0} %; {:.1} MiB)",
            report.pulls_per_sec(),
            mib(pulling.rss_max)
        ),
        &format!("≈ {}", n as u64 / ctx.plan.pull_secs),
        None,
    ));
    let p99 = report.pull.quantile(0.99);
    ctx.row(Row::ours(
        &format!("{l}: pull round trip p50 / p99 / max"),
        format!(
            "{:.2} / {:.2} / {:.2} ms",
            report.pull.quantile(0.5) as f64 / 1000.0,
            p99 as f64 / 1000.0,
            report.pull.max() as f64 / 1000.0
        ),
        "p99 ≤ 10 ms",
        Some(report.pull.count() > 0 && p99 <= 10_000),
    ));
    let detail: Vec<String> = report
        .errors
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    ctx.row(Row::ours(
        &format!("{l}: errors (late pulls)"),
        format!(
            "{errors} {} ({})",
            if detail.is_empty() {
                String::new()
            } else {
                format!("[{}]", detail.join(", "))
            },
            report.late_pulls
        ),
        "0",
        Some(errors == 0),
    ));
}
