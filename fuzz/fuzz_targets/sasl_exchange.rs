//! Fuzzes the broker's side of SASL with whatever a client might send: a PLAIN token,
//! and a SCRAM exchange of two arbitrary messages (client-first, then client-final),
//! for a known user and an unknown one, with both hashes. Any panic or abort is a bug;
//! refusals are the expected outcome for most inputs.
//!
//! Run: `cargo fuzz run sasl_exchange` (see docs/broker.md).
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use sasl::{Mechanism, ScramCredential, ScramServer};

/// One credential per hash, made once (PBKDF2 is slow on purpose).
static CREDENTIALS: LazyLock<[(Mechanism, ScramCredential); 2]> = LazyLock::new(|| {
    [Mechanism::ScramSha256, Mechanism::ScramSha512].map(|m| {
        (
            m,
            sasl::credential(m, b"pw", vec![7; 16], sasl::MIN_ITERATIONS),
        )
    })
});

fuzz_target!(|data: &[u8]| {
    let _ = sasl::parse_plain(data);
    // The first byte splits the rest into client-first and client-final.
    let Some((&cut, rest)) = data.split_first() else {
        return;
    };
    let (first, last) = rest.split_at(usize::from(cut).min(rest.len()));
    for (m, credential) in CREDENTIALS.iter() {
        for known in [true, false] {
            let lookup = |_: &str| known.then(|| credential.clone());
            if let Ok((server, _)) = ScramServer::start(*m, first, lookup) {
                let _ = server.finish(last);
            }
        }
    }
});
