//! Examples of PROTOCOL.md §16 (shards): the two Errors a client meets while
//! its user is on the wrong shard or on the move.

use cloudservice::protocol::{ErrorCode, ErrorReport, Frame, Message};

fn error(rid: u32, code: ErrorCode, text: &str) -> Frame {
    Frame::new(
        rid,
        Message::Error(ErrorReport {
            code,
            message: text.to_owned(),
        }),
    )
}

/// The examples, by name.
pub fn examples() -> Vec<(&'static str, Frame)> {
    vec![
        (
            "error-wrong-shard",
            error(1, ErrorCode::WrongShard, "wrong shard"),
        ),
        ("error-moving", error(0, ErrorCode::Moving, "moving")),
    ]
}
