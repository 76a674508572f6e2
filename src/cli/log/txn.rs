//! What `strata log dump` shows of transactions: the marker of a control batch
//! (COMMIT or ABORT, and the epoch of the coordinator that wrote it), and, in a
//! `__transaction_state` partition, each record's transactional id and state.

use broker::control_batch::{self, MarkerKind};
use broker::txn::records::{decode_key, TxnValue};
use bytes::Bytes;
use log_store::inspect::BatchInfo;

use crate::cli::json::JsonObject;

/// A transaction marker as dumped.
pub struct MarkerInfo {
    /// COMMIT, ABORT, or `unreadable(why)`.
    pub kind: String,
    pub coordinator_epoch: Option<i32>,
}

/// The marker of a transactional control batch (`None` for any other batch, or one
/// that fails its CRC).
pub fn marker(b: &BatchInfo) -> Option<MarkerInfo> {
    let h = &b.header;
    if !(h.is_control() && h.is_transactional() && b.crc_ok) {
        return None;
    }
    Some(
        match control_batch::decode(Bytes::copy_from_slice(b.frame)) {
            Ok(m) => MarkerInfo {
                kind: match m.kind {
                    MarkerKind::Commit => "COMMIT",
                    MarkerKind::Abort => "ABORT",
                }
                .to_string(),
                coordinator_epoch: Some(m.coordinator_epoch),
            },
            Err(e) => MarkerInfo {
                kind: format!("unreadable({e})"),
                coordinator_epoch: None,
            },
        },
    )
}

/// One line per record of a `__transaction_state` batch (indented text, or JSON
/// objects of type `txn_state`): the id and its state, or a tombstone for an expired
/// id.
pub fn state_records(b: &BatchInfo, json: bool) -> Vec<String> {
    if b.header.is_control() || !b.crc_ok {
        return Vec::new();
    }
    let base = |offset: i64| {
        JsonObject::new()
            .str("type", "txn_state")
            .int("offset", offset)
    };
    let records = match broker::internal_batch::decode(Bytes::copy_from_slice(b.frame)) {
        Ok(records) => records,
        Err(e) => {
            let object = base(b.header.base_offset).str("error", &e);
            return vec![line(json, object, format!("unreadable batch: {e}"))];
        }
    };
    records
        .into_iter()
        .map(|(key, value, offset)| {
            let id = key.map(decode_key).transpose();
            let value = value.map(TxnValue::decode).transpose();
            match (id, value) {
                (Ok(Some(id)), Ok(Some(v))) => state_line(json, base(offset), offset, &id, &v),
                (Ok(Some(id)), Ok(None)) => line(
                    json,
                    base(offset)
                        .str("transactional_id", &id)
                        .str("state", "tombstone"),
                    format!("offset={offset} transactional_id={id:?} tombstone (expired)"),
                ),
                (Ok(None), _) => line(
                    json,
                    base(offset).str("error", "no key"),
                    format!("offset={offset} a record without a key"),
                ),
                (Err(e), _) | (_, Err(e)) => {
                    let e = e.to_string();
                    let text = format!("offset={offset} unreadable: {e}");
                    line(json, base(offset).str("error", &e), text)
                }
            }
        })
        .collect()
}

fn state_line(json: bool, base: JsonObject, offset: i64, id: &str, v: &TxnValue) -> String {
    let partitions: Vec<String> = v
        .partitions
        .iter()
        .map(|(t, p)| format!("{t}-{p}"))
        .collect();
    let partitions = partitions.join(",");
    let text = format!(
        "offset={offset} transactional_id={id:?} state={} producer_id={} producer_epoch={} \
         timeout_ms={} start_ms={} partitions={}",
        v.status.name(),
        v.producer_id,
        v.producer_epoch,
        v.timeout_ms,
        v.start_ms,
        if partitions.is_empty() {
            "-"
        } else {
            &partitions
        },
    );
    let object = base
        .str("transactional_id", id)
        .str("state", v.status.name())
        .int("producer_id", v.producer_id)
        .int("producer_epoch", v.producer_epoch)
        .int("timeout_ms", v.timeout_ms)
        .int("start_ms", v.start_ms)
        .str("partitions", &partitions);
    line(json, object, text)
}

fn line(json: bool, object: JsonObject, text: String) -> String {
    if json {
        object.finish()
    } else {
        format!("  txn {text}")
    }
}
