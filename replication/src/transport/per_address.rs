//! Connection slots per client address: the Raft port's handshakes here, and the
//! broker's Kafka listeners and admin port.

use std::sync::{Arc, Mutex};

/// Connections held per client address (the broker's `max.connections.per.ip`, and
/// fixed caps on its admin port and on Raft handshakes).
#[derive(Clone)]
pub struct PerAddress {
    max: usize,
    held: Arc<Mutex<std::collections::HashMap<std::net::IpAddr, usize>>>,
}

/// One admitted connection; dropping it frees its address's slot.
pub struct AddressSlot {
    ip: std::net::IpAddr,
    of: PerAddress,
}

impl PerAddress {
    pub fn new(max: usize) -> PerAddress {
        PerAddress {
            max,
            held: Arc::default(),
        }
    }

    /// A slot for one more connection from `ip`, unless it holds `max` already.
    pub fn admit(&self, ip: std::net::IpAddr) -> Option<AddressSlot> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let n = held.entry(ip).or_default();
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(AddressSlot {
            ip,
            of: self.clone(),
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut held = self.of.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = held.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                held.remove(&self.ip);
            }
        }
    }
}
