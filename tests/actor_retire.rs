//! A request that reaches a user's actor while it retires is answered
//! (regression: stall14). The soak of session 13 (seed 1796230967405806039,
//! `--actor-idle 0.2`) lost one push this way: the device waited for its
//! PushAck for ever and pushed nothing more.

mod common;

use cloudservice::protocol::{Frame, Message};
use common::*;
use std::time::{Duration, Instant};

/// Pushes one at a time, each after a pause around the actor's idle period
/// (`--actor-idle 0.005`), so that many of them arrive while the actor is
/// retiring or has just retired: every one must be answered.
#[test]
fn every_push_that_meets_a_retiring_actor_is_answered() {
    let seed = seed("RETIRE_SEED");
    println!("seed {seed} (replay: RETIRE_SEED={seed})");
    let mut rng = Rng::new(seed);
    let server = Server::start_with(&["--actor-idle", "0.005"]);
    let mut a = WireClient::new_user(server.addr);
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut pushes = 0u32;
    while Instant::now() < deadline && pushes < 3_000 {
        std::thread::sleep(Duration::from_micros(2_000 + rng.below(8_000)));
        let rid = a.send(Message::MakeDir {
            path: p(&format!("d{pushes}")),
        });
        match a.read(Duration::from_secs(5)) {
            Read1::Frame(Frame {
                request_id,
                message: Message::PushAck(_),
            }) if request_id == rid => {}
            other => panic!("push {pushes} (request {rid}) answered {other:?}"),
        }
        pushes += 1;
    }
    println!("{pushes} pushes answered");
}
