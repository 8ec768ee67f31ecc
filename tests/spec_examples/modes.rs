//! Examples of PROTOCOL.md §15 (the executable bit): a PullModes, its
//! ModeBatch reply with an executable script, and the SetMode pushes that
//! set and clear the bit.

use cloudservice::protocol::{
    ChangeBatch, ChangeEntry, ContentHash, EntryState, Frame, Message, SetMode, WirePath,
};

fn path(text: &str) -> WirePath {
    WirePath::new(text).expect("example path obeys §6")
}

/// The examples, by name.
pub fn examples() -> Vec<(&'static str, Frame)> {
    let script = b"#!/bin/sh\necho hi\n";
    vec![
        (
            "pullmodes",
            Frame::new(30, Message::PullModes { cursor: 21 }),
        ),
        (
            "modebatch",
            Frame::new(
                30,
                Message::ModeBatch(ChangeBatch {
                    head: 23,
                    full: false,
                    last: true,
                    entries: vec![
                        ChangeEntry {
                            path: path("bin"),
                            version: 22,
                            state: EntryState::Dir,
                            executable: false,
                        },
                        ChangeEntry {
                            path: path("bin/hi.sh"),
                            version: 23,
                            state: EntryState::File {
                                size: script.len() as u64,
                                hash: ContentHash::of(script),
                            },
                            executable: true,
                        },
                    ],
                }),
            ),
        ),
        (
            "setmode-executable",
            Frame::new(
                31,
                Message::SetMode(SetMode {
                    base_version: 22,
                    executable: true,
                    path: path("bin/hi.sh"),
                }),
            ),
        ),
        (
            "setmode-plain",
            Frame::new(
                32,
                Message::SetMode(SetMode {
                    base_version: 23,
                    executable: false,
                    path: path("bin/hi.sh"),
                }),
            ),
        ),
    ]
}
