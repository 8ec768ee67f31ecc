//! End-to-end: `cloud-client status` of a device joining a user (outside
//! tester's finding 3). While a new device downloads a folder, "to upload"
//! climbed with the download (every placed file counted as a pending upload
//! until it was compared again), so a user watching status saw the new
//! device about to upload the whole folder. A download placed by the client
//! is not a local change: "to upload" stays 0 during a pure download, and a
//! real local change made during the join is counted.

mod common;

use common::{eventually, new_user, status_json, write, Client, Server, CONVERGE};
use std::path::Path;
use std::time::{Duration, Instant};

/// Files in the folder the new devices download.
const FILES: usize = 3000;

/// One reading of a joining device's status.
#[derive(Debug, Clone, Copy)]
struct Sample {
    uploads: u64,
    downloads: u64,
}

/// Samples `folder`'s status until it is in sync (or 60 s), calling
/// `during` with each sample (once the device has joined).
fn sample_join(folder: &Path, mut during: impl FnMut(Sample)) -> Vec<Sample> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut samples = Vec::new();
    while Instant::now() < deadline {
        let v = status_json(folder).1;
        if let (Some(uploads), Some(downloads)) = (
            v["uploads_pending"].as_u64(),
            v["downloads_pending"].as_u64(),
        ) {
            let s = Sample { uploads, downloads };
            samples.push(s);
            during(s);
            if v["in_sync"] == true {
                return samples;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("not in sync within 60 s; samples: {samples:?}");
}

/// The most files counted to upload in any sample.
fn most_to_upload(samples: &[Sample]) -> u64 {
    samples.iter().map(|s| s.uploads).max().unwrap_or(0)
}

#[test]
fn a_joining_device_shows_nothing_to_upload_but_its_own_changes() {
    let server = Server::start();
    let a = tempfile::tempdir().expect("tempdir");
    for i in 0..FILES {
        write(
            a.path(),
            &format!("d{:02}/f{i:04}.txt", i / 100),
            format!("file {i} of the folder"),
        );
    }
    let user = new_user(server.port, a.path());
    let _ca = Client::start(server.port, a.path(), None);
    assert!(
        eventually(CONVERGE, || status_json(a.path()).1["in_sync"] == true),
        "A uploads its folder"
    );

    // C joins: a pure download.
    let c = tempfile::tempdir().expect("tempdir");
    let _cc = Client::start(server.port, c.path(), Some(&user));
    let samples = sample_join(c.path(), |_| {});
    let downloading = samples.iter().filter(|s| s.downloads > 0).count();
    // Nothing is ever counted to upload: not while the download runs (the
    // outside tester's finding 3: up to 2,844 of 3,000), and not right
    // after the last file is placed (19-37 of the last-placed files were
    // counted until the session's next look, ~0.1-0.5 s: the first
    // comparison of the folder ran before the watcher's events of those
    // placements were in, and took the files, written less than 0.3 s
    // before, for files still being written).
    let worst = most_to_upload(&samples);
    println!(
        "C: {} samples, {downloading} during the download, most to upload: {worst}",
        samples.len()
    );
    assert!(
        downloading > 0,
        "no sample caught the download: {samples:?}"
    );
    assert_eq!(
        worst, 0,
        "a pure download showed files to upload: {samples:?}"
    );
    assert!(c.path().join("d29/f2999.txt").is_file());
    // A joining device with an empty folder pushes nothing.
    let pushed = pushes_of(&server, c.path());
    assert!(pushed.is_empty(), "C pushed: {pushed:?}");

    // D joins and the user writes a file of its own during the download:
    // that one is counted (and uploaded), the downloads still are not.
    let d = tempfile::tempdir().expect("tempdir");
    let _cd = Client::start(server.port, d.path(), Some(&user));
    let mut written = false;
    let samples = sample_join(d.path(), |s| {
        if !written && s.downloads > 0 {
            write(d.path(), "mine.txt", "written on D while it joins");
            written = true;
        }
    });
    assert!(written, "no sample caught D's download: {samples:?}");
    let worst = most_to_upload(&samples);
    let counted = samples.iter().filter(|s| s.uploads > 0).count();
    println!(
        "D: {} samples, {counted} with mine.txt counted, most to upload: {worst}",
        samples.len()
    );
    assert!(counted > 0, "D's own file was never counted: {samples:?}");
    assert!(worst <= 2, "D counted downloads as uploads: {samples:?}");
    assert!(
        eventually(CONVERGE, || {
            std::fs::read_to_string(a.path().join("mine.txt"))
                .ok()
                .as_deref()
                == Some("written on D while it joins")
        }),
        "D's file reaches A"
    );
    let pushed = pushes_of(&server, d.path());
    assert!(
        !pushed.is_empty() && pushed.iter().all(|l| l.contains("mine.txt")),
        "D pushed its own file and nothing else: {pushed:?}"
    );
}

/// The connection log's lines of pushes by the device of `folder`.
fn pushes_of(server: &Server, folder: &Path) -> Vec<String> {
    let device = status_json(folder).1["device"].clone();
    let log = server.conn_log();
    assert!(
        log.contains(&format!("client={device} ")),
        "device {device} is in the connection log"
    );
    let me = format!("client={device} request=push");
    log.lines()
        .filter(|l| l.contains(&me))
        .map(str::to_owned)
        .collect()
}
