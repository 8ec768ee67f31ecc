//! Targets 4, 5 and the client half of 6: propagation between two running
//! clients, server memory under a slow reader, and a watching client's idle cost.

use crate::common::{rss_kib, threads, Client, Rng, Verbosity};
use crate::report::Row;
use crate::util::{self, once_command};
use crate::{bin, start_server, start_server_in, stop_server, Ctx, Server};
use cloudservice::protocol::{
    ContentHash, Fetch, FileBegin, Frame, FrameDecoder, Hello, HelloMode, Message, Status, UserId,
    WirePath,
};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// A watching client (PULLING_RATE 5 s, the normal log to the run's scratch space).
fn start_client(ctx: &mut Ctx, server: &Server, dir: &Path, user: Option<&str>) -> Client {
    let log = ctx.log_path("client").with_extension("err");
    Client::options(server.port, dir)
        .bin(&bin("cloud-client"))
        .rate("5")
        .user(user)
        .log(&log)
        .verbosity(Verbosity::Normal)
        .start()
}

/// Waits until `path` holds exactly `content`; returns the time it took.
fn wait_content(path: &Path, content: &[u8], limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if std::fs::read(path).is_ok_and(|c| c == content) {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    None
}

/// Nearest-rank percentile of samples in milliseconds.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Target 4: a 4 KiB file written at client A, complete at client B.
pub fn propagation(ctx: &mut Ctx) {
    // Issue 12: propagation over TLS (the default) within 10 % of plaintext.
    propagation_in(ctx, false);
    propagation_in(ctx, true);
}

/// One propagation run over TLS, or in plaintext (`--insecure-plaintext` on
/// the server and both clients) when `plaintext`.
fn propagation_in(ctx: &mut Ctx, plaintext: bool) {
    let mode = if plaintext { "plaintext" } else { "TLS" };
    println!("e2e: propagation ({mode})");
    let mut server = start_server_in(ctx, &[], plaintext);
    let a = ctx.fresh_dir("prop-a");
    let b = ctx.fresh_dir("prop-b");
    let mut client_a = start_client(ctx, &server, &a, None);
    let user = client_a
        .wait_line("user id:", Duration::from_secs(30))
        .and_then(|l| l.split("user id:").nth(1).map(|s| s.trim().to_owned()));
    let Some(user) = user else {
        ctx.note("propagation: client A printed no user id".to_owned());
        return;
    };
    let mut client_b = start_client(ctx, &server, &b, Some(&user));
    let _ = std::fs::write(a.join("warmup.txt"), b"warm");
    if wait_content(&b.join("warmup.txt"), b"warm", Duration::from_secs(30)).is_none() {
        ctx.note("propagation: the warm-up file never reached client B".to_owned());
    }
    let n = ctx.plan.propagation_samples;
    let one_go = series(&a, &b, n, Save::OneGo);
    let editor = series(&a, &b, n, Save::Editor);
    client_a.terminate();
    client_b.terminate();
    stop_server(&mut server);
    report_series(ctx, &format!("a 4 KiB file ({mode})"), one_go);
    report_series(
        ctx,
        &format!("an editor-style save (temp file renamed over, 4 KiB; {mode})"),
        editor,
    );
}

/// How a sample's file is written at A.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Save {
    /// A new file, written in one `write` and closed.
    OneGo,
    /// An existing file replaced the way editors save: a temporary file is
    /// written, closed and renamed over it.
    Editor,
}

/// `n` samples of one kind: milliseconds from the write at A until B holds
/// the content (sorted), and how many never arrived within 15 s.
fn series(a: &Path, b: &Path, n: usize, save: Save) -> (Vec<f64>, usize) {
    let mut samples = Vec::new();
    let mut lost = 0;
    let mut rng = Rng::new(5 + save as u64);
    if save == Save::Editor {
        let _ = std::fs::write(a.join("doc.bin"), b"first version");
        let _ = wait_content(
            &b.join("doc.bin"),
            b"first version",
            Duration::from_secs(15),
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    for i in 0..n {
        let mut content = vec![0u8; 4096];
        rng.fill(&mut content);
        let name = match save {
            Save::OneGo => format!("p-{i:02}.bin"),
            Save::Editor => "doc.bin".to_owned(),
        };
        let start = Instant::now();
        match save {
            Save::OneGo => {
                let _ = std::fs::write(a.join(&name), &content);
            }
            Save::Editor => {
                let tmp = a.join(".doc.bin.swp");
                let _ = std::fs::write(&tmp, &content);
                let _ = std::fs::rename(&tmp, a.join(&name));
            }
        }
        match wait_content(&b.join(&name), &content, Duration::from_secs(15)) {
            Some(_) => samples.push(start.elapsed().as_secs_f64() * 1000.0),
            None => lost += 1,
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    samples.sort_by(|x, y| x.total_cmp(y));
    (samples, lost)
}

/// The p50 and p99 rows of one series.
fn report_series(ctx: &mut Ctx, what: &str, (samples, lost): (Vec<f64>, usize)) {
    let (p50, p99) = (percentile(&samples, 0.5), percentile(&samples, 0.99));
    ctx.row(Row::ours(
        &format!(
            "propagation of {what} A → B, PULLING_RATE 5: p50 ({} samples, {lost} lost)",
            samples.len()
        ),
        format!("{p50:.0} ms"),
        "≤ 50 ms",
        Some(lost == 0 && p50 <= 50.0),
    ));
    ctx.row(Row::ours(
        &format!(
            "propagation of {what}: p99 (min {:.0} ms, max {:.0} ms)",
            samples.first().copied().unwrap_or(f64::NAN),
            samples.last().copied().unwrap_or(f64::NAN)
        ),
        format!("{p99:.0} ms"),
        "≤ 200 ms",
        Some(lost == 0 && p99 <= 200.0),
    ));
}

/// Reads frames until `want` matches one (bounded).
fn read_until(
    stream: &mut TcpStream,
    decoder: &mut FrameDecoder,
    limit: Duration,
    want: impl Fn(&Message) -> bool,
) -> Option<Message> {
    let deadline = Instant::now() + limit;
    let mut buf = vec![0u8; 64 * 1024];
    let mut pending: Vec<u8> = Vec::new();
    while Instant::now() < deadline {
        let mut input: &[u8] = &pending;
        match decoder.feed(&mut input) {
            Ok(Status::Complete(frame)) => {
                let used = pending.len() - input.len();
                pending.drain(..used);
                if want(&frame.message) {
                    return Some(frame.message);
                }
                continue;
            }
            Ok(Status::Partial) => pending.clear(),
            Err(_) => return None,
        }
        stream.set_read_timeout(Some(Duration::from_secs(1))).ok();
        match stream.read(&mut buf) {
            Ok(0) => return None,
            Ok(n) => pending.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
    None
}

/// Uploads `size` bytes of generated noise as `big.bin` over a raw connection.
fn raw_upload(stream: &mut TcpStream, decoder: &mut FrameDecoder, size: u64) -> bool {
    let send = |stream: &mut TcpStream, rid: u32, m: Message| {
        stream.write_all(&Frame::new(rid, m).to_bytes()).is_ok()
    };
    let hello = Hello {
        mode: HelloMode::NewUser,
        user_id: UserId::NONE,
        client_id: 0,
    };
    if !send(stream, 1, Message::Hello(hello))
        || read_until(stream, decoder, Duration::from_secs(20), |m| {
            matches!(m, Message::Welcome(_))
        })
        .is_none()
    {
        return false;
    }
    let chunk = 256 * 1024;
    let mut buf = vec![0u8; chunk];
    let mut hasher = blake3::Hasher::new();
    let mut rng = Rng::new(3);
    let mut left = size;
    while left > 0 {
        let n = left.min(chunk as u64) as usize;
        rng.fill(&mut buf[..n]);
        hasher.update(&buf[..n]);
        left -= n as u64;
    }
    let Ok(path) = WirePath::new("big.bin") else {
        return false;
    };
    let begin = FileBegin {
        version: 0,
        size,
        hash: ContentHash(*hasher.finalize().as_bytes()),
        path,
    };
    if !send(stream, 2, Message::FileBegin(begin)) {
        return false;
    }
    let mut rng = Rng::new(3);
    let mut left = size;
    while left > 0 {
        let n = left.min(chunk as u64) as usize;
        rng.fill(&mut buf[..n]);
        if !send(stream, 2, Message::FileChunk(buf[..n].to_vec())) {
            return false;
        }
        left -= n as u64;
    }
    send(stream, 2, Message::FileEnd)
        && read_until(stream, decoder, Duration::from_secs(300), |m| {
            matches!(m, Message::PushAck(_))
        })
        .is_some()
}

/// Target 5: server RSS while a reader at ~1 MB/s downloads a big file.
pub fn backpressure(ctx: &mut Ctx) {
    println!("e2e: backpressure");
    let mut server = start_server(ctx, &[]);
    let pid = server.pid();
    std::thread::sleep(Duration::from_secs(1));
    let rss_empty = rss_kib(pid);
    let size = ctx.plan.backpressure_file;
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", server.port)) else {
        ctx.note("backpressure: cannot connect".to_owned());
        return;
    };
    let mut decoder = FrameDecoder::new();
    if !raw_upload(&mut stream, &mut decoder, size) {
        ctx.note("backpressure: the upload of the big file failed".to_owned());
        stop_server(&mut server);
        return;
    }
    std::thread::sleep(Duration::from_secs(3));
    let rss_idle = rss_kib(pid);
    let Ok(path) = WirePath::new("big.bin") else {
        return;
    };
    let fetch = Frame::new(3, Message::Fetch(Fetch { version: 0, path })).to_bytes();
    let _ = stream.write_all(&fetch);
    let mut rss_max = rss_idle;
    let mut got: u64 = 0;
    let start = Instant::now();
    let limit = Duration::from_secs(ctx.plan.backpressure_secs);
    let mut buf = vec![0u8; 100_000];
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .ok();
    let mut tick = 0u64;
    while start.elapsed() < limit && got < size {
        // 100 kB every 100 ms: ~1 MB/s.
        let mut want = buf.len();
        while want > 0 {
            match stream.read(&mut buf[..want]) {
                Ok(0) => break,
                Ok(n) => {
                    want -= n;
                    got += n as u64;
                }
                Err(_) => break,
            }
        }
        tick += 1;
        let next = start + Duration::from_millis(100 * tick);
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        rss_max = rss_max.max(rss_kib(pid));
    }
    let rate = got as f64 / start.elapsed().as_secs_f64() / 1e6;
    drop(stream);
    stop_server(&mut server);
    let growth = (rss_max as f64 - rss_idle as f64) / 1024.0;
    ctx.row(Row::ours(
        &format!(
            "server RSS growth while a {:.1} MB/s reader downloads a {} MiB file (first {:.0} s; RSS {:.1} MiB empty, {:.1} MiB idle after upload, {:.1} MiB peak)",
            rate,
            size >> 20,
            start.elapsed().as_secs_f64(),
            rss_empty as f64 / 1024.0,
            rss_idle as f64 / 1024.0,
            rss_max as f64 / 1024.0
        ),
        format!("{growth:.1} MiB"),
        "≤ 64 MiB",
        Some(growth <= 64.0),
    ));
}

/// Target 6, client side: a client watching many files with nothing changing.
pub fn client_idle(ctx: &mut Ctx) {
    println!("e2e: client idle");
    let mut server = start_server(ctx, &[]);
    let dir = ctx.fresh_dir("watched");
    let (files, dirs) = (ctx.plan.small_files, ctx.plan.small_dirs);
    util::many_files(&dir, files, dirs, 4096, 13);
    let out = ctx.log_path("client-once");
    let mut cmd = once_command(&server, &dir, None);
    cmd.arg("--once");
    if let Err(e) = util::run_timed("cloud-client --once", cmd, &out, Duration::from_secs(600)) {
        ctx.note(format!("client idle: first upload failed: {e}"));
    }
    let mut client = start_client(ctx, &server, &dir, None);
    std::thread::sleep(Duration::from_secs(15));
    let pid = client.pid().expect("the client runs");
    let window = Duration::from_secs(ctx.plan.client_idle_secs);
    let cpu = util::cpu_percent(pid, window);
    let rss = rss_kib(pid) as f64 / 1024.0;
    let threads = threads(pid);
    client.terminate();
    stop_server(&mut server);
    ctx.row(Row::ours(
        &format!(
            "client watching {files} files, nothing changing: CPU over {} s ({threads} threads)",
            window.as_secs()
        ),
        format!("{cpu:.2} %"),
        "< 1 %",
        Some(cpu < 1.0),
    ));
    ctx.row(Row::ours(
        &format!("client watching {files} files: RSS"),
        format!("{rss:.1} MiB"),
        "< 50 MiB",
        Some(rss < 50.0),
    ));
}
