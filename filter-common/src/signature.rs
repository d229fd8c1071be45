//! Flood signatures: the header fields a flood's packets share and the service's calm traffic
//! does not. The controller mines them from sampled headers ([`Facts`] in each sample) and
//! writes them to SIGNATURES; the program drops an unknown, unfamiliar source's UDP that
//! [`FloodSignature::matches`] while its service's budget applies, and a SYN that matches
//! before it is answered with a cookie. One decision, used by the program and the miner.

/// Slots in SIGNATURES: the program checks every one, so few.
pub const SIGNATURE_SLOTS: u32 = 4;
/// Bytes a signature may look at past the transport header's first 8: for UDP the payload's
/// first 8, for TCP the ACK number, header length, flags and window.
pub const PAYLOAD_BYTES: usize = 8;

/// Which fields of a [`FloodSignature`] must match (bits of `fields`); none: an empty slot.
pub mod field {
    pub const DST_PORT: u32 = 1 << 0;
    pub const SRC_PORT: u32 = 1 << 1;
    /// IP length: the datagram's, from its header (IPv6: the payload length plus 40).
    pub const IP_LEN: u32 = 1 << 2;
    pub const TTL: u32 = 1 << 3;
    /// IPv4 identification (zero for IPv6).
    pub const IP_ID: u32 = 1 << 4;
    /// The payload bytes under `payload_mask`.
    pub const PAYLOAD: u32 = 1 << 5;
    pub const ALL: u32 = DST_PORT | SRC_PORT | IP_LEN | TTL | IP_ID | PAYLOAD;
}

/// The header facts a signature can look at, of one packet.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Facts {
    pub dst_port: u16,
    pub src_port: u16,
    pub ip_len: u16,
    pub ip_id: u16,
    pub ttl: u8,
    /// IP protocol.
    pub proto: u8,
    /// How many of `payload`'s bytes the packet has (0 to [`PAYLOAD_BYTES`]).
    pub payload_len: u8,
    pub _pad: u8,
    pub payload: [u8; PAYLOAD_BYTES],
}

/// Value of SIGNATURES: one flood's fingerprint, of UDP datagrams or TCP SYNs (`facts.proto`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FloodSignature {
    /// [`field`] bits that must match; 0 for an empty slot.
    pub fields: u32,
    /// The controller's number for it (what `levee signatures` lists).
    pub id: u32,
    pub facts: Facts,
    /// Which payload bytes must equal `facts.payload` (0xff: the whole byte).
    pub payload_mask: [u8; PAYLOAD_BYTES],
}

const _: () = assert!(core::mem::size_of::<Facts>() == 20);
const _: () = assert!(core::mem::size_of::<FloodSignature>() == 36);

impl FloodSignature {
    /// Whether a packet with these facts matches. Written as a chain of early exits, which
    /// the verifier walks in a line.
    #[inline(always)]
    pub fn matches(&self, p: &Facts) -> bool {
        let f = self.fields;
        let s = &self.facts;
        if f == 0 || p.proto != s.proto {
            return false;
        }
        if f & field::DST_PORT != 0 && p.dst_port != s.dst_port {
            return false;
        }
        if f & field::SRC_PORT != 0 && p.src_port != s.src_port {
            return false;
        }
        if f & field::IP_LEN != 0 && p.ip_len != s.ip_len {
            return false;
        }
        if f & field::TTL != 0 && p.ttl != s.ttl {
            return false;
        }
        if f & field::IP_ID != 0 && p.ip_id != s.ip_id {
            return false;
        }
        if f & field::PAYLOAD != 0 {
            let mask = u64::from_ne_bytes(self.payload_mask);
            // Bytes the packet does not have never match a byte under the mask.
            let present = if p.payload_len as usize >= PAYLOAD_BYTES {
                u64::MAX
            } else {
                u64::from_ne_bytes(prefix_mask(p.payload_len))
            };
            if mask & !present != 0 {
                return false;
            }
            let got = u64::from_ne_bytes(p.payload);
            let want = u64::from_ne_bytes(s.payload);
            if (got ^ want) & mask != 0 {
                return false;
            }
        }
        true
    }
}

/// 0xff over the first `n` bytes.
#[inline(always)]
fn prefix_mask(n: u8) -> [u8; PAYLOAD_BYTES] {
    let mut m = [0u8; PAYLOAD_BYTES];
    let mut i = 0;
    while i < PAYLOAD_BYTES {
        if i < n as usize {
            m[i] = 0xff;
        }
        i += 1;
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Facts {
        Facts {
            dst_port: 5004,
            src_port: 40000,
            ip_len: 92,
            ip_id: 0,
            ttl: 64,
            proto: 17,
            payload_len: 8,
            _pad: 0,
            payload: *b"AAAAAAAA",
        }
    }

    #[test]
    fn an_empty_slot_matches_nothing() {
        assert!(!FloodSignature::default().matches(&facts()));
    }

    #[test]
    fn each_field_must_match() {
        let sig = FloodSignature {
            fields: field::DST_PORT | field::SRC_PORT | field::PAYLOAD,
            id: 1,
            facts: facts(),
            payload_mask: [0xff, 0xff, 0, 0, 0, 0, 0, 0],
        };
        assert!(sig.matches(&facts()));
        // Fields left out may differ.
        assert!(sig.matches(&Facts {
            ip_len: 1000,
            ttl: 3,
            payload: *b"AAxxxxxx",
            ..facts()
        }));
        assert!(!sig.matches(&Facts {
            src_port: 40001,
            ..facts()
        }));
        assert!(!sig.matches(&Facts {
            payload: *b"AxAAAAAA",
            ..facts()
        }));
        assert!(!sig.matches(&Facts {
            proto: 6,
            ..facts()
        }));
        // A payload shorter than the masked bytes never matches.
        assert!(!sig.matches(&Facts {
            payload_len: 1,
            ..facts()
        }));
        assert!(sig.matches(&Facts {
            payload_len: 2,
            ..facts()
        }));
    }
}
