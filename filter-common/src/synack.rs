//! The SYN-ACK the program sends in answer to a SYN while strict is engaged: the client's TCP
//! options read, the reply's IP and TCP headers built byte for byte with their checksums.
//! Plain functions over arrays, so the host tests check every byte; the XDP program only finds
//! the cookie (a kernel helper) and copies these headers into the frame.
//!
//! The cookie itself encodes the client's MSS. Window scale and SACK travel, as in the kernel's
//! own cookies (`cookie_init_timestamp`), in the low 6 bits of our timestamp: the client echoes
//! it in its ACK and the kernel decodes it when it makes the connection. A client without
//! timestamps gets neither (the kernel assumes so too).

/// Longest TCP option block.
pub const TCP_OPTIONS_MAX: usize = 40;
/// Length of the TCP header of our SYN-ACK with timestamps: 20 bytes and 20 of options (MSS,
/// SACK-permitted or NOPs, timestamps, window scale or NOPs).
pub const SYNACK_TCP_LEN: usize = 40;
/// Without timestamps: 20 bytes and the MSS option. A SYN of a client without timestamps, or
/// one whose frame has no room for more, gets this one; it offers neither window scale nor
/// SACK, which the kernel then assumes too.
pub const SYNACK_TCP_LEN_SHORT: usize = 24;
/// Longest IPv4 and IPv6 SYN-ACK from the IP header on.
pub const SYNACK_V4_LEN: usize = 20 + SYNACK_TCP_LEN;
pub const SYNACK_V6_LEN: usize = 40 + SYNACK_TCP_LEN;
/// The receive window our SYN-ACK offers (never scaled in a SYN); the kernel's own
/// connection takes over with its first segment.
pub const SYNACK_WINDOW: u16 = 64240;

const TSBITS: u32 = 6;
const TS_OPT_WSCALE_MASK: u32 = 0xf;
const TS_OPT_SACK: u32 = 1 << 4;
const TS_OPT_ECN: u32 = 1 << 5;
const MAX_WSCALE: u8 = 14;

/// What the client's SYN offered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SynOptions {
    /// The client's timestamp value, echoed in ours.
    pub tsval: Option<u32>,
    pub wscale: Option<u8>,
    pub sack: bool,
    /// The SYN asked for ECN (ECE and CWR) and the host accepts it. Carried in the timestamp
    /// only, so it holds only with timestamps (the kernel's `cookie_ecn_ok`).
    pub ecn: bool,
}

impl SynOptions {
    /// What our SYN-ACK may agree to of what the client offered, given the host's settings
    /// (the `SYNACK_*` flags of [`crate::abi::flags`]): the kernel refuses a cookie whose
    /// timestamp carries SACK while `tcp_sack` is 0, or a window scale while
    /// `tcp_window_scaling` is 0 (`cookie_timestamp_decode`), and then answers the client's
    /// ACK with a RST; without `tcp_timestamps` it refuses any timestamp, and the SYN-ACK
    /// offers the MSS alone. ECN is agreed only if the client asked for it too (`ecn_asked`).
    pub fn agreed(mut self, host_flags: u32, ecn_asked: bool) -> SynOptions {
        use crate::abi::flags;
        if host_flags & flags::SYNACK_TS == 0 {
            self.tsval = None;
        }
        self.sack &= host_flags & flags::SYNACK_SACK != 0;
        if host_flags & flags::SYNACK_WSCALE == 0 {
            self.wscale = None;
        }
        self.ecn = ecn_asked && host_flags & flags::SYNACK_ECN != 0;
        self
    }
}

/// Options (or NOPs) read from a SYN at most.
pub const OPTION_STEPS: usize = 12;

/// Room for a SYN's options: a power of two above [`TCP_OPTIONS_MAX`], so every index can
/// be masked into range (the verifier then needs no proof of each bound).
pub type OptionsBuf = [u8; 64];

/// Where [`parse_syn_options`] notes what it finds while it walks. The XDP program keeps
/// it in map memory and every write is volatile: the verifier then follows one value, the
/// offset, through the walk, instead of every combination of options seen so far (which
/// exceeds its budget).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct OptionsFound {
    pub tsval: u32,
    pub has_tsval: u8,
    pub wscale: u8,
    pub has_wscale: u8,
    pub sack: u8,
}

/// Reads the options of a SYN (`opts[..len]`). Malformed options end the walk; what was read
/// before stands, as the kernel's `tcp_parse_options` does.
#[inline(always)]
pub fn parse_syn_options(opts: &OptionsBuf, len: usize, found: &mut OptionsFound) -> SynOptions {
    let at = |i: usize| opts[i & 63];
    // SAFETY (all volatile accesses): `found` is a valid, exclusive reference.
    unsafe { core::ptr::write_volatile(found, OptionsFound::default()) };
    let len = if len > TCP_OPTIONS_MAX {
        TCP_OPTIONS_MAX
    } else {
        len
    };
    let mut i = 0usize;
    // Real stacks send at most 8 options and NOPs (macOS: MSS, NOP, WS, NOP, NOP, TS, SACK,
    // EOL); a block padded beyond OPTION_STEPS steps is read only that far, which leaves
    // the connection without what was not read (window scale, SACK), never broken. The bound
    // also keeps the verifier's walk of this loop small.
    for _ in 0..OPTION_STEPS {
        if i >= len {
            break;
        }
        let kind = at(i);
        if kind == 0 {
            break;
        }
        if kind == 1 {
            i += 1;
            continue;
        }
        let size = at(i + 1) as usize;
        if size < 2 || i + size > len {
            break;
        }
        match (kind, size) {
            (3, 3) => unsafe {
                core::ptr::write_volatile(&mut found.wscale, at(i + 2));
                core::ptr::write_volatile(&mut found.has_wscale, 1);
            },
            (4, 2) => unsafe { core::ptr::write_volatile(&mut found.sack, 1) },
            (8, 10) => unsafe {
                let ts = u32::from_be_bytes([at(i + 2), at(i + 3), at(i + 4), at(i + 5)]);
                core::ptr::write_volatile(&mut found.tsval, ts);
                core::ptr::write_volatile(&mut found.has_tsval, 1);
            },
            _ => {}
        }
        i += size;
    }
    let f = unsafe { core::ptr::read_volatile(found) };
    SynOptions {
        tsval: if f.has_tsval != 0 {
            Some(f.tsval)
        } else {
            None
        },
        wscale: if f.has_wscale != 0 {
            Some(if f.wscale > MAX_WSCALE {
                MAX_WSCALE
            } else {
                f.wscale
            })
        } else {
            None
        },
        sack: f.sack != 0,
        // Decided by the caller, from the SYN's flags and the host's setting.
        ecn: false,
    }
}

/// Our timestamp value: the time in ms with the client's window scale, SACK and ECN in its
/// low bits, never later than now (the kernel's `cookie_init_timestamp`).
#[inline(always)]
pub fn ts_cookie(now_ms: u32, opts: &SynOptions) -> u32 {
    let mut options = match opts.wscale {
        Some(ws) => u32::from(ws) & TS_OPT_WSCALE_MASK,
        None => TS_OPT_WSCALE_MASK,
    };
    if opts.sack {
        options |= TS_OPT_SACK;
    }
    if opts.ecn {
        options |= TS_OPT_ECN;
    }
    let mut ts = ((now_ms >> TSBITS) << TSBITS) | options;
    if ts > now_ms {
        ts = ts.wrapping_sub(1 << TSBITS);
    }
    ts
}

/// Everything a SYN-ACK says. Addresses as in [`crate::parse::IpPacket`] (IPv4 in the first 4
/// bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SynAck {
    /// The host's end: the SYN's destination.
    pub local: [u8; 16],
    /// The client: the SYN's source.
    pub remote: [u8; 16],
    pub local_port: u16,
    pub remote_port: u16,
    /// The SYN's sequence number; ours acknowledges it plus one.
    pub client_seq: u32,
    /// Our initial sequence number.
    pub cookie: u32,
    /// The MSS we offer.
    pub mss: u16,
    /// The window scale we offer (only with timestamps).
    pub wscale: u8,
    pub ttl: u8,
    pub options: SynOptions,
    /// Our timestamp value ([`ts_cookie`]), used when the client sent timestamps.
    pub tsval: u32,
}

/// Room for the longest SYN-ACK (IPv6), from the IP header on.
pub type SynAckBuf = [u8; SYNACK_V6_LEN];

/// The TCP header length of the SYN-ACK for `s`: with timestamps or without.
#[inline(always)]
pub fn synack_tcp_len(s: &SynAck) -> usize {
    if s.options.tsval.is_some() {
        SYNACK_TCP_LEN
    } else {
        SYNACK_TCP_LEN_SHORT
    }
}

/// Writes the IPv4 or IPv6 header and the TCP header of the SYN-ACK into `out`; returns its
/// length from the IP header on. In place, so the XDP program can keep the buffer off its
/// small stack.
#[inline(always)]
pub fn write_synack(s: &SynAck, v6: bool, out: &mut SynAckBuf) -> usize {
    let tcp_len = synack_tcp_len(s);
    let (ip_len, pseudo) = if v6 {
        out[0..8].copy_from_slice(&[0x60, 0, 0, 0, 0, tcp_len as u8, 6, s.ttl]);
        out[8..24].copy_from_slice(&s.local);
        out[24..40].copy_from_slice(&s.remote);
        let sum = sum_bytes(sum_bytes(0, &s.local), &s.remote);
        (40, sum)
    } else {
        out[0..12].copy_from_slice(&[
            0x45,
            0,
            0,
            (20 + tcp_len) as u8,
            0,
            0,
            0x40,
            0,
            s.ttl,
            6,
            0,
            0,
        ]);
        let addrs: [u8; 8] = [
            s.local[0],
            s.local[1],
            s.local[2],
            s.local[3],
            s.remote[0],
            s.remote[1],
            s.remote[2],
            s.remote[3],
        ];
        out[12..20].copy_from_slice(&addrs);
        let header: [u8; 20] = [
            out[0], out[1], out[2], out[3], out[4], out[5], out[6], out[7], out[8], out[9], 0, 0,
            addrs[0], addrs[1], addrs[2], addrs[3], addrs[4], addrs[5], addrs[6], addrs[7],
        ];
        out[10..12].copy_from_slice(&fold(sum_bytes(0, &header)).to_be_bytes());
        (20, sum_bytes(0, &addrs))
    };
    let tcp: &mut [u8; SYNACK_TCP_LEN] = match out.get_mut(ip_len..ip_len + SYNACK_TCP_LEN) {
        Some(t) => match t.try_into() {
            Ok(t) => t,
            Err(_) => return 0,
        },
        None => return 0,
    };
    write_tcp(s, pseudo + 6 + tcp_len as u32, tcp);
    ip_len + tcp_len
}

/// The TCP header with options and its checksum (`pseudo`: the pseudo-header's sum).
#[inline(always)]
fn write_tcp(s: &SynAck, pseudo: u32, t: &mut [u8; SYNACK_TCP_LEN]) {
    t[0..2].copy_from_slice(&s.local_port.to_be_bytes());
    t[2..4].copy_from_slice(&s.remote_port.to_be_bytes());
    t[4..8].copy_from_slice(&s.cookie.to_be_bytes());
    t[8..12].copy_from_slice(&s.client_seq.wrapping_add(1).to_be_bytes());
    let tcp_len = synack_tcp_len(s);
    t[12] = ((tcp_len / 4) as u8) << 4;
    // SYN | ACK, and ECE when ECN was agreed (only with timestamps, which carry it).
    t[13] = if s.options.ecn && s.options.tsval.is_some() {
        0x52
    } else {
        0x12
    };
    t[14..16].copy_from_slice(&SYNACK_WINDOW.to_be_bytes());
    t[16..20].copy_from_slice(&[0, 0, 0, 0]);
    // Options: MSS, then timestamps (with SACK-permitted) and window scale if the client
    // sent timestamps, else the end-of-options mark and zero padding.
    let mss = s.mss.to_be_bytes();
    t[20..24].copy_from_slice(&[2, 4, mss[0], mss[1]]);
    if let Some(tsecr) = s.options.tsval {
        let head = if s.options.sack { [4, 2] } else { [1, 1] };
        t[24..28].copy_from_slice(&[head[0], head[1], 8, 10]);
        t[28..32].copy_from_slice(&s.tsval.to_be_bytes());
        t[32..36].copy_from_slice(&tsecr.to_be_bytes());
        let ws = if s.options.wscale.is_some() {
            [1, 3, 3, s.wscale]
        } else {
            [1, 1, 1, 1]
        };
        t[36..40].copy_from_slice(&ws);
    } else {
        t[24..40].copy_from_slice(&[0; 16]);
    }
    // The checksum covers the header as long as it is: the short one ends after the MSS, and
    // zeros beyond it add nothing to the sum.
    let sum = fold(sum_bytes(pseudo, t));
    t[16..18].copy_from_slice(&sum.to_be_bytes());
}

/// Adds big-endian 16-bit words to a one's-complement sum (carries folded at the end).
#[inline(always)]
fn sum_bytes<const N: usize>(mut sum: u32, b: &[u8; N]) -> u32 {
    let mut i = 0;
    while i + 1 < N {
        sum += u32::from(u16::from_be_bytes([b[i], b[i + 1]]));
        i += 2;
    }
    sum
}

fn sum_slice(mut sum: u32, b: &[u8]) -> u32 {
    for c in b.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    sum
}

#[inline(always)]
fn fold(mut sum: u32) -> u16 {
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    !(sum as u16)
}

/// Whether a header with its checksum in place sums to zero (for the host tests and tools).
pub fn checksum_ok(pseudo_and_header: &[u8]) -> bool {
    fold(sum_slice(0, pseudo_and_header)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(bytes: &[u8]) -> SynOptions {
        let mut o: OptionsBuf = [0u8; 64];
        o[..bytes.len()].copy_from_slice(bytes);
        parse_syn_options(&o, bytes.len(), &mut OptionsFound::default())
    }

    #[test]
    fn reads_a_linux_syn() {
        // MSS 1460, SACK-permitted, timestamps, NOP, window scale 7: what Linux sends.
        let o = opts(&[
            2, 4, 5, 180, 4, 2, 8, 10, 0, 0, 0x30, 0x39, 0, 0, 0, 0, 1, 3, 3, 7,
        ]);
        assert_eq!(
            o,
            SynOptions {
                tsval: Some(12345),
                wscale: Some(7),
                sack: true,
                ecn: false,
            }
        );
    }

    #[test]
    fn malformed_options_stop_the_walk() {
        assert_eq!(
            opts(&[4, 0, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0]),
            SynOptions::default()
        );
        // A timestamp running past the block is not read.
        assert_eq!(opts(&[1, 1, 8, 10, 0, 0]), SynOptions::default());
        assert_eq!(opts(&[3, 3, 99]).wscale, Some(14));
        assert_eq!(opts(&[0, 3, 3, 7]), SynOptions::default());
    }

    #[test]
    fn ts_cookie_carries_options_and_never_runs_ahead() {
        let mut o = SynOptions {
            tsval: Some(1),
            wscale: Some(7),
            sack: true,
            ecn: false,
        };
        let ts = ts_cookie(100_000, &o);
        assert_eq!(ts & 0x3f, 7 | 0x10);
        o.ecn = true;
        assert_eq!(ts_cookie(100_000, &o) & 0x3f, 7 | 0x10 | 0x20);
        assert!(ts <= 100_000 && 100_000 - ts < 64);
        let none = ts_cookie(100_000, &SynOptions::default());
        assert_eq!(none & 0xf, 0xf);
    }

    /// Issue 21: with `tcp_sack=0` or `tcp_window_scaling=0` the SYN-ACK offers neither,
    /// and its timestamp encodes neither, so the kernel takes the cookie.
    #[test]
    fn the_synack_agrees_only_to_what_the_host_accepts() {
        use crate::abi::flags;
        let offered = SynOptions {
            tsval: Some(1),
            wscale: Some(7),
            sack: true,
            ecn: false,
        };
        let all = flags::SYNACK_TS | flags::SYNACK_SACK | flags::SYNACK_WSCALE | flags::SYNACK_ECN;
        assert_eq!(offered.agreed(all, false), offered);
        assert_eq!(offered.agreed(all & !flags::SYNACK_TS, false).tsval, None);
        assert!(offered.agreed(all, true).ecn);
        let no_sack = offered.agreed(all & !flags::SYNACK_SACK, false);
        assert_eq!((no_sack.sack, no_sack.wscale), (false, Some(7)));
        assert_eq!(ts_cookie(100_000, &no_sack) & 0x3f, 7);
        let no_ws = offered.agreed(all & !flags::SYNACK_WSCALE, true);
        assert_eq!((no_ws.sack, no_ws.wscale, no_ws.ecn), (true, None, true));
        assert_eq!(ts_cookie(100_000, &no_ws) & 0x3f, 0xf | 0x10 | 0x20);
        assert!(!offered.agreed(0, true).ecn);
        let mut s = sample();
        s.options = no_ws;
        let b = v4_bytes(&s);
        // SACK-permitted, then NOPs where the window scale would be.
        assert_eq!(&b[20 + 24..20 + 26], &[4, 2]);
        assert_eq!(&b[20 + 36..20 + 40], &[1, 1, 1, 1]);
    }

    fn v4_bytes(s: &SynAck) -> Vec<u8> {
        let mut b = [0xeeu8; SYNACK_V6_LEN];
        assert_eq!(write_synack(s, false, &mut b), SYNACK_V4_LEN);
        b[..SYNACK_V4_LEN].to_vec()
    }

    fn sample() -> SynAck {
        let mut local = [0u8; 16];
        local[..4].copy_from_slice(&[10, 0, 0, 1]);
        let mut remote = [0u8; 16];
        remote[..4].copy_from_slice(&[192, 0, 2, 7]);
        SynAck {
            local,
            remote,
            local_port: 443,
            remote_port: 40000,
            client_seq: 0xffff_ffff,
            cookie: 0xdead_beef,
            mss: 1460,
            wscale: 7,
            ttl: 64,
            options: SynOptions {
                tsval: Some(777),
                wscale: Some(8),
                sack: true,
                ecn: false,
            },
            tsval: 4242,
        }
    }

    #[test]
    fn ipv4_synack_bytes_and_checksums() {
        let s = sample();
        let b = v4_bytes(&s);
        assert_eq!(&b[..4], &[0x45, 0, 0, 60]);
        assert_eq!(b[8], 64);
        assert_eq!(&b[12..16], &[10, 0, 0, 1]);
        assert_eq!(&b[16..20], &[192, 0, 2, 7]);
        assert!(checksum_ok(&b[..20]), "IPv4 header checksum");
        let t = &b[20..60];
        assert_eq!(&t[0..4], &[1, 187, 0x9c, 0x40]);
        assert_eq!(&t[4..8], &0xdead_beefu32.to_be_bytes());
        assert_eq!(&t[8..12], &[0, 0, 0, 0], "ack wraps to seq + 1");
        assert_eq!((t[12], t[13]), (0xa0, 0x12));
        assert_eq!(&t[20..24], &[2, 4, 5, 180]);
        assert_eq!(&t[24..28], &[4, 2, 8, 10]);
        assert_eq!(&t[28..32], &4242u32.to_be_bytes());
        assert_eq!(&t[32..36], &777u32.to_be_bytes());
        assert_eq!(&t[36..40], &[1, 3, 3, 7]);
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&b[12..20]);
        pseudo.extend_from_slice(&[0, 6, 0, 40]);
        pseudo.extend_from_slice(t);
        assert!(checksum_ok(&pseudo), "TCP checksum");

        let mut ecn = sample();
        ecn.options.ecn = true;
        let b = v4_bytes(&ecn);
        assert_eq!(b[33], 0x52, "SYN | ACK | ECE");
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&b[12..20]);
        pseudo.extend_from_slice(&[0, 6, 0, 40]);
        pseudo.extend_from_slice(&b[20..60]);
        assert!(checksum_ok(&pseudo), "TCP checksum with ECE");
    }

    #[test]
    fn without_timestamps_only_mss() {
        let mut s = sample();
        s.options = SynOptions {
            tsval: None,
            wscale: Some(7),
            sack: true,
            ecn: true,
        };
        let mut b = [0xeeu8; SYNACK_V6_LEN];
        assert_eq!(write_synack(&s, false, &mut b), 44);
        assert_eq!(&b[2..4], &[0, 44], "total length");
        assert_eq!(b[32], 0x60, "data offset 24");
        assert_eq!(
            b[33], 0x12,
            "no ECE: without timestamps the cookie cannot carry ECN"
        );
        assert_eq!(&b[40..44], &[2, 4, 5, 180], "MSS only");
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&b[12..20]);
        pseudo.extend_from_slice(&[0, 6, 0, 24]);
        pseudo.extend_from_slice(&b[20..44]);
        assert!(checksum_ok(&pseudo), "TCP checksum of the short header");
    }

    #[test]
    fn ipv6_synack_checksum() {
        let mut s = sample();
        s.local = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        s.remote = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
        let mut b = [0xeeu8; SYNACK_V6_LEN];
        assert_eq!(write_synack(&s, true, &mut b), SYNACK_V6_LEN);
        assert_eq!(&b[..8], &[0x60, 0, 0, 0, 0, 40, 6, 64]);
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&b[8..40]);
        pseudo.extend_from_slice(&[0, 0, 0, 40, 0, 0, 0, 6]);
        pseudo.extend_from_slice(&b[40..]);
        assert!(checksum_ok(&pseudo));
    }
}
