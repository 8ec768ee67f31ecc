//! Targets 2 and 3: upload (new user, `--once` until every byte is
//! acknowledged) and download (new client into an empty folder) of one big
//! random file and of many 4 KiB files, against an rsync daemon on loopback
//! driven with `rsync -a --whole-file`, at equal durability.

use crate::common::{free_port, tree_bytes, wait_port, Proc};
use crate::report::Row;
use crate::util::{self, once_command};
use crate::{start_server, stop_server, Ctx, Server};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Longest single transfer before it counts as failed.
const LIMIT: Duration = Duration::from_secs(600);

/// A loopback rsync daemon with one writable module, `bench`.
struct Rsyncd {
    proc: Proc,
    port: u16,
    module: PathBuf,
}

impl Rsyncd {
    fn start(ctx: &mut Ctx) -> Option<Rsyncd> {
        let dir = ctx.fresh_dir("rsyncd");
        let module = dir.join("module");
        std::fs::create_dir_all(&module).ok()?;
        let conf = dir.join("rsyncd.conf");
        let text = format!(
            "use chroot = no\nuid = root\ngid = root\nmax connections = 8\n[bench]\n    path = {}\n    read only = false\n",
            module.display()
        );
        std::fs::write(&conf, text).ok()?;
        let port = free_port();
        let mut cmd = Command::new("rsync");
        cmd.arg("--daemon")
            .arg("--no-detach")
            .arg(format!("--config={}", conf.display()))
            .arg(format!("--port={port}"))
            .arg("--address=127.0.0.1")
            .arg(format!("--log-file={}", dir.join("rsyncd.log").display()));
        let out = ctx.log_path("rsyncd");
        let proc = Proc::spawn_to_files("rsync --daemon", cmd, &out);
        if !wait_port(port, Duration::from_secs(10)) {
            return None;
        }
        Some(Rsyncd { proc, port, module })
    }

    fn url(&self, sub: &str) -> String {
        format!("rsync://127.0.0.1:{}/bench/{sub}/", self.port)
    }
}

impl Drop for Rsyncd {
    fn drop(&mut self) {
        self.proc.terminate(Duration::from_secs(10));
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tool {
    Ours,
    Rsync,
}

/// Which tool goes first alternates from run to run: on this VM the first
/// large write after a large delete is much slower than the next one, and a
/// fixed order gave one side that handicap every time.
fn order(run: usize) -> [Tool; 2] {
    if run.is_multiple_of(2) {
        [Tool::Rsync, Tool::Ours]
    } else {
        [Tool::Ours, Tool::Rsync]
    }
}

/// Lets the file system finish the previous run's writes and deletes
/// (`sync`, then a pause) so they are not charged to the next transfer.
fn settle() {
    let _ = Command::new("sync").status();
    std::thread::sleep(Duration::from_secs(1));
}

struct DataSet {
    label: String,
    root: PathBuf,
    bytes: u64,
}

pub fn run_all(ctx: &mut Ctx, rsync_ok: bool) {
    let big = ctx.fresh_dir("data-big");
    let size = ctx.plan.big_file;
    util::random_file(&big.join("random.bin"), size, 7);
    let small = ctx.fresh_dir("data-small");
    let (files, dirs) = (ctx.plan.small_files, ctx.plan.small_dirs);
    util::many_files(&small, files, dirs, 4096, 11);
    let sets = [
        DataSet {
            label: format!("{} MiB random file", size >> 20),
            bytes: tree_bytes(&big),
            root: big,
        },
        DataSet {
            label: format!("{files} × 4 KiB files in {dirs} dirs"),
            bytes: tree_bytes(&small),
            root: small,
        },
    ];
    for set in &sets {
        println!("e2e: transfer {}", set.label);
        upload(ctx, set, rsync_ok, false);
        upload(ctx, set, rsync_ok, true);
        download(ctx, set, rsync_ok);
        let _ = std::fs::remove_dir_all(&set.root);
    }
}

/// Uploads `set` as a new user with `cloud-client --once`; returns the time
/// and the user ID, or None if it failed or stored the wrong byte count.
fn our_upload(ctx: &mut Ctx, server: &Server, set: &DataSet) -> Option<(f64, String)> {
    let _ = std::fs::remove_dir_all(set.root.join(".cloudservice"));
    let out = ctx.log_path("client-upload");
    let mut cmd = once_command(server, &set.root, None);
    cmd.arg("--once");
    let took = util::run_timed("cloud-client upload", cmd, &out, LIMIT);
    let _ = std::fs::remove_dir_all(set.root.join(".cloudservice"));
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    let user = text
        .lines()
        .find_map(|l| l.strip_prefix("user id: "))
        .map(|s| s.trim().to_owned());
    match (took, user) {
        (Ok(t), Some(user)) => {
            let stored = tree_bytes(&server.data.join("AllClients").join(&user));
            if stored == set.bytes {
                Some((t.as_secs_f64(), user))
            } else {
                ctx.note(format!(
                    "{}: server holds {stored} of {} bytes after the upload",
                    set.label, set.bytes
                ));
                None
            }
        }
        (Err(e), _) => {
            ctx.note(format!("{}: upload failed: {e}", set.label));
            None
        }
        (Ok(_), None) => {
            ctx.note(format!("{}: the client printed no user id", set.label));
            None
        }
    }
}

fn rsync_run(ctx: &mut Ctx, args: &[&str], from: &str, to: &str) -> Option<f64> {
    let out = ctx.log_path("rsync");
    let mut cmd = Command::new("rsync");
    cmd.args(["-a", "--whole-file"])
        .args(args)
        .arg(from)
        .arg(to);
    match util::run_timed("rsync", cmd, &out, LIMIT) {
        Ok(t) => Some(t.as_secs_f64()),
        Err(e) => {
            ctx.note(format!("rsync {from} → {to} failed: {e}"));
            None
        }
    }
}

fn median_of(xs: Vec<Option<f64>>) -> Option<f64> {
    let ok: Vec<f64> = xs.iter().flatten().copied().collect();
    (ok.len() == xs.len() && !ok.is_empty()).then(|| util::median(ok))
}

fn upload(ctx: &mut Ctx, set: &DataSet, rsync_ok: bool, fsync: bool) {
    let runs = ctx.plan.runs;
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    let rsyncd = if rsync_ok { Rsyncd::start(ctx) } else { None };
    for run in 0..runs {
        for who in order(run) {
            settle();
            if who == Tool::Ours {
                let mut server = start_server(ctx, if fsync { &["--fsync"] } else { &[] });
                ours.push(our_upload(ctx, &server, set).map(|(t, _)| t));
                stop_server(&mut server);
                let _ = std::fs::remove_dir_all(&server.data);
            } else if let Some(d) = &rsyncd {
                let src = format!("{}/", set.root.display());
                let dest = d.url(&format!("up-{run}"));
                let args: &[&str] = if fsync { &["--fsync"] } else { &[] };
                theirs.push(rsync_run(ctx, args, &src, &dest));
                let _ = std::fs::remove_dir_all(d.module.join(format!("up-{run}")));
            }
        }
    }
    let figure = if fsync {
        format!("upload {} (server --fsync vs rsync --fsync)", set.label)
    } else {
        format!("upload {}", set.label)
    };
    ctx.row(Row::versus(&figure, median_of(ours), median_of(theirs)));
}

fn download(ctx: &mut Ctx, set: &DataSet, rsync_ok: bool) {
    let runs = ctx.plan.runs;
    let mut server = start_server(ctx, &[]);
    let user = our_upload(ctx, &server, set).map(|(_, u)| u);
    let rsyncd = if rsync_ok { Rsyncd::start(ctx) } else { None };
    let source_ok = rsyncd.as_ref().is_some_and(|d| {
        rsync_run(ctx, &[], &format!("{}/", set.root.display()), &d.url("src")).is_some()
    });
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for run in 0..runs {
        for who in order(run) {
            settle();
            if who == Tool::Ours {
                if let Some(user) = &user {
                    let dest = ctx.fresh_dir("download");
                    ours.push(our_download(ctx, &server, user, &dest, set));
                    let _ = std::fs::remove_dir_all(&dest);
                } else {
                    ours.push(None);
                }
            } else if let (Some(d), true) = (&rsyncd, source_ok) {
                let dest = ctx.fresh_dir("rsync-download");
                let t = rsync_run(ctx, &[], &d.url("src"), &format!("{}/", dest.display()));
                let got = tree_bytes(&dest);
                theirs.push(t.filter(|_| got == set.bytes));
                let _ = std::fs::remove_dir_all(&dest);
            }
        }
    }
    stop_server(&mut server);
    let _ = std::fs::remove_dir_all(&server.data);
    drop(rsyncd);
    ctx.row(Row::versus(
        &format!("download {}", set.label),
        median_of(ours),
        median_of(theirs),
    ));
}

fn our_download(
    ctx: &mut Ctx,
    server: &Server,
    user: &str,
    dest: &Path,
    set: &DataSet,
) -> Option<f64> {
    let out = ctx.log_path("client-download");
    let mut cmd = once_command(server, dest, Some(user));
    cmd.arg("--once");
    match util::run_timed("cloud-client download", cmd, &out, LIMIT) {
        Ok(t) => {
            let got = tree_bytes(dest);
            if got == set.bytes {
                Some(t.as_secs_f64())
            } else {
                ctx.note(format!(
                    "{}: download produced {got} of {} bytes",
                    set.label, set.bytes
                ));
                None
            }
        }
        Err(e) => {
            ctx.note(format!("{}: download failed: {e}", set.label));
            None
        }
    }
}
