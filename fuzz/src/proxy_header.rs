//! The `proxy_header` property: the PROXY protocol header parser
//! (`cloudservice::server::proxy_header`, PROTOCOL.md §17) over bytes
//! gathered in pieces, as the reactor peeks at a socket.
//!
//! # Input
//! ```text
//! plan_len u8 | plan [plan_len] | stream
//! ```
//! The plan's bytes are the sizes of the pieces (0 read as 1; the last one
//! repeats); the stream is what the proxy sent.
//!
//! Properties: nothing panics; the answers over the growing prefixes are
//! `Incomplete` some times, then one answer that never changes again (the
//! same `Complete`, or an error); a `Complete` header is at most
//! `MAX_HEADER` bytes, is first seen exactly at its last byte, and its
//! bytes alone give the same answer; the whole stream at once agrees with
//! the last piece.

use cloudservice::server::proxy_header::{parse, Gathered, MAX_HEADER};

/// Checks the properties for one input.
///
/// # Panics
/// When a property does not hold.
pub fn check_proxy_header(data: &[u8]) {
    let Some((&plan_len, rest)) = data.split_first() else {
        return;
    };
    let plan_len = usize::from(plan_len).min(rest.len());
    let (plan, stream) = rest.split_at(plan_len);
    let stream = &stream[..stream.len().min(4 * MAX_HEADER)];
    let mut gathered = 0usize;
    let mut settled: Option<Result<Gathered, String>> = None;
    let mut piece = 0usize;
    while gathered < stream.len() {
        let size = plan.get(piece).or(plan.last()).copied().unwrap_or(1).max(1);
        piece += 1;
        gathered = (gathered + usize::from(size)).min(stream.len());
        let got = parse(&stream[..gathered]).map_err(|e| e.to_string());
        match (&settled, &got) {
            (None, Ok(Gathered::Incomplete)) => {}
            (None, _) => {
                if let Ok(Gathered::Complete { len, .. }) = got {
                    assert!(len <= MAX_HEADER && len <= gathered, "{len} of {gathered}");
                    let alone = parse(&stream[..len]).map_err(|e| e.to_string());
                    assert_eq!(alone, got, "the header's bytes alone");
                    if len > 0 {
                        assert_eq!(parse(&stream[..len - 1]), Ok(Gathered::Incomplete));
                    }
                }
                settled = Some(got);
            }
            (Some(first), _) => assert_eq!(first, &got, "changed at {gathered} bytes"),
        }
    }
    let whole = parse(stream).map_err(|e| e.to_string());
    match settled {
        Some(first) => assert_eq!(first, whole),
        None => assert_eq!(whole, Ok(Gathered::Incomplete)),
    }
}
