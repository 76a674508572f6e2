//! Fuzzes what the broker does with every frame before any handler runs: header and
//! body decoding (`broker::request::decode`), and for Produce requests the RecordBatch
//! validation a batch must pass before it may reach a log. Any panic or abort is a bug;
//! errors are the expected outcome for most inputs.
//!
//! Run: `cargo fuzz run request_decoder` (see docs/broker.md).
#![no_main]

use bytes::Bytes;
use kafka_protocol::messages::RequestKind;
use libfuzzer_sys::fuzz_target;

// The broker's allocator, so a forged array length behaves as it does in production.
#[global_allocator]
static ALLOCATOR: broker::alloc::LazyHugeAlloc = broker::alloc::LazyHugeAlloc;

fuzz_target!(|data: &[u8]| {
    let Ok(request) = broker::request::decode(Bytes::copy_from_slice(data)) else {
        return;
    };
    if let broker::request::Body::Decoded(kind) = request.body {
        if let RequestKind::Produce(produce) = *kind {
            for topic in produce.topic_data {
                for partition in topic.partition_data {
                    if let Some(records) = partition.records {
                        let _ = log_store::BatchHeader::parse_validated(&records);
                    }
                }
            }
        }
    }
});
