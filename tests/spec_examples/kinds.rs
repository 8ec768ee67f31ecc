//! §3.2's table of every message kind and its version, and §3.3's header
//! checks, against the codec: the table is the one list an outside
//! implementer has (the outside tester's breaker16 F6: §3.2 ended at
//! version 1 and said "every other kind byte is undefined", §3.3 refused
//! every header byte but `01`, while the codec defined kinds of versions 2
//! to 8), so it must never drift from [`Kind`] again.

use super::spec_text;
use cloudservice::protocol::{decode_all, FrameError, Kind};
use std::collections::BTreeMap;

/// One row of §3.2: kind byte → (name, version).
type Table = BTreeMap<u8, (String, u8)>;

/// The rows of the table under `### 3.2`: `| `0xNN` | Name | V | …`.
fn kinds_table(spec: &str) -> Table {
    let start = spec.find("### 3.2 ").expect("§3.2 heading");
    let end = start + spec[start..].find("### 3.3 ").expect("§3.3 heading");
    let mut table = Table::new();
    for line in spec[start..end].lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // "", kind, name, version, direction, section, payload, "".
        let Some(hex) = cells.get(1).and_then(|c| c.strip_prefix("`0x")) else {
            continue;
        };
        let byte = u8::from_str_radix(hex.trim_end_matches('`'), 16)
            .unwrap_or_else(|_| panic!("§3.2 row with a bad kind: {line}"));
        let name = cells.get(2).expect("name cell").to_string();
        let version: u8 = cells
            .get(3)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("§3.2 row without a Version column: {line}"));
        assert!(
            table.insert(byte, (name, version)).is_none(),
            "§3.2 lists 0x{byte:02X} twice"
        );
    }
    table
}

/// Every kind byte the codec defines is in §3.2 with its name and header
/// version, and §3.2 lists no other.
#[test]
fn the_kinds_table_is_the_codecs() {
    let table = kinds_table(&spec_text());
    let mut problems = Vec::new();
    for byte in 0..=u8::MAX {
        let codec = Kind::from_byte(byte)
            .ok()
            .map(|k| (format!("{k:?}"), k.version()));
        let spec = table.get(&byte).cloned();
        if codec != spec {
            problems.push(format!("0x{byte:02X}: codec {codec:?}, §3.2 {spec:?}"));
        }
    }
    assert!(
        problems.is_empty(),
        "§3.2 and the codec disagree:\n{}",
        problems.join("\n")
    );
}

/// What §3.3's checks 2 to 4 say of a header with version byte `version`
/// and kind byte `kind`, for a receiver of every version of the table.
fn spec_verdict(table: &Table, version: u8, kind: u8) -> Result<(), FrameError> {
    let newest = table.values().map(|(_, v)| *v).max().expect("kinds");
    if !(1..=newest).contains(&version) {
        return Err(FrameError::UnsupportedVersion(version));
    }
    match table.get(&kind) {
        Some((_, defined)) if *defined > version => Err(FrameError::UnknownKind(kind)),
        None => Err(FrameError::UnknownKind(kind)),
        Some((_, defined)) if *defined != version => Err(FrameError::UnsupportedVersion(version)),
        Some(_) => Ok(()),
    }
}

/// For every version byte and kind byte (65,536 headers, empty payload),
/// the codec's header verdict is the one §3.3 derives from §3.2. A header
/// that passes may still fail on its (empty) payload: that is not a header
/// error.
#[test]
fn every_header_is_judged_as_section_3_3_says() {
    let table = kinds_table(&spec_text());
    let mut problems = Vec::new();
    for version in 0..=u8::MAX {
        for kind in 0..=u8::MAX {
            let header = [0x43, 0x53, version, kind, 0, 0, 0, 1, 0, 0, 0, 0];
            let (_, end) = decode_all(&header);
            let codec = match end {
                Err(e @ (FrameError::UnsupportedVersion(_) | FrameError::UnknownKind(_))) => Err(e),
                _ => Ok(()),
            };
            let spec = spec_verdict(&table, version, kind);
            if codec != spec && problems.len() < 20 {
                problems.push(format!(
                    "43 53 {version:02x} {kind:02x}: codec {codec:?}, §3.3 {spec:?}"
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "§3.3 and the codec disagree (first 20):\n{}",
        problems.join("\n")
    );
}

/// The worked examples of §3.3 ("`43 53 07 1b` (PartialAck) passes; …
/// is UnknownKind …") are the codec's verdicts, and there are at least
/// five of them.
#[test]
fn the_header_examples_of_section_3_3_are_the_codecs() {
    let spec = spec_text();
    let start = spec.find("### 3.3 ").expect("§3.3 heading");
    let end = start + spec[start..].find("### 3.4 ").expect("§3.4 heading");
    let section = &spec[start..end];
    let at = section
        .find("For example (N = 8):")
        .expect("§3.3's header examples");
    let text = section[at..].split("\n\n").next().unwrap_or_default();
    let text = text.replace('\n', " ");
    let mut checked = 0;
    for example in text.split(';') {
        let Some(open) = example.find("`43 53 ") else {
            continue;
        };
        let bytes: Vec<u8> = example[open + 1..]
            .split('`')
            .next()
            .unwrap_or_default()
            .split(' ')
            .map(|b| u8::from_str_radix(b, 16).expect("hex byte"))
            .collect();
        let [0x43, 0x53, version, kind] = bytes[..] else {
            panic!("§3.3 example is not four header bytes: {example}");
        };
        let header = [0x43, 0x53, version, kind, 0, 0, 0, 1, 0, 0, 0, 0];
        let codec = match decode_all(&header).1 {
            Err(FrameError::UnsupportedVersion(_)) => "is UnsupportedVersion",
            Err(FrameError::UnknownKind(_)) => "is UnknownKind",
            _ => "passes",
        };
        assert!(
            example.contains(codec),
            "§3.3 example {example:?}: the codec says it {codec}"
        );
        checked += 1;
    }
    assert!(checked >= 5, "only {checked} examples found in: {text}");
}
