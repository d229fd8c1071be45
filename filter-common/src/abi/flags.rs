//! [`super::Config::flags`] bits.

/// Drop UDP from the source ports set in AMP_PORTS.
pub const SIG_AMP_PORTS: u32 = 1 << 0;
/// Drop impossible TCP flag combinations.
pub const SIG_TCP_FLAGS: u32 = 1 << 1;
/// Drop IP fragments.
pub const SIG_FRAGMENTS: u32 = 1 << 2;
/// Run the per-source limiter.
pub const SOURCE_LIMITS: u32 = 1 << 3;
/// The map has entries; without the bit the program skips the lookup.
pub const HAS_ALLOW_V4: u32 = 1 << 4;
pub const HAS_ALLOW_V6: u32 = 1 << 5;
pub const HAS_BLOCK_V4: u32 = 1 << 6;
pub const HAS_BLOCK_V6: u32 = 1 << 7;
/// The egress program records flows (strict is `auto` or `always`).
pub const TRACK_FLOWS: u32 = 1 << 8;
/// Strict is engaged: drop what no service or flow accounts for, answer SYNs with cookies.
pub const STRICT: u32 = 1 << 9;
/// Unknown UDP sources to a service share its budget (strict, UDP under attack).
pub const UDP_BUDGET: u32 = 1 << 10;
/// The host accepts ECN (`net.ipv4.tcp_ecn` not 0): a SYN asking for it (ECE and CWR) gets
/// ECE in our SYN-ACK and the ECN bit in the cookie's timestamp.
pub const SYNACK_ECN: u32 = 1 << 11;
/// UPSTREAM_RULES holds FlowSpec rules received from BGP neighbours (map content, like
/// HAS_*).
pub const UPSTREAM_RULES: u32 = 1 << 12;
/// `levee capture` runs: copy the packets CAPTURE_FILTER matches. Kept out of
/// [`SETTINGS`], so a config write (a mode switch, a reload) leaves a capture running.
pub const CAPTURE: u32 = 1 << 13;
/// The host takes SACK on a connection made from a cookie (`net.ipv4.tcp_sack` not 0):
/// our SYN-ACK may agree to it.
pub const SYNACK_SACK: u32 = 1 << 14;
/// The host takes a window scale (`net.ipv4.tcp_window_scaling` not 0).
pub const SYNACK_WSCALE: u32 = 1 << 15;
/// The host has timestamps (`net.ipv4.tcp_timestamps` not 0): without them the kernel
/// refuses a cookie ACK that carries one, so our SYN-ACK offers none.
pub const SYNACK_TS: u32 = 1 << 16;
/// Strict may engage in the program, on one CPU, when packets of one class from sources
/// it has no state for pass [`super::Config::trigger_cost_ns`]'s rate (strict not `off`).
pub const TRIGGER: u32 = 1 << 17;
/// While the program's trigger holds strict, `monitor` enforces (`detection.auto_enforce`).
pub const AUTO_ENFORCE: u32 = 1 << 18;
/// Remember sources that send UDP within their limits while calm, and pass them before
/// the unknown budget (strict not `off`).
pub const FAMILIAR: u32 = 1 << 19;
/// SIGNATURES holds at least one UDP flood signature (map content, like UPSTREAM_RULES).
pub const SIGNATURES: u32 = 1 << 20;
/// SIGNATURES holds at least one TCP SYN flood signature (map content).
pub const SIGNATURES_SYN: u32 = 1 << 21;
/// BGP_PEERS holds a neighbour: its sessions pass before every stage.
pub const BGP_PEERS: u32 = 1 << 22;
/// Mask of the bits the controller sets; the HAS_* bits follow the map contents.
pub const SETTINGS: u32 = SIG_AMP_PORTS
    | SIG_TCP_FLAGS
    | SIG_FRAGMENTS
    | SOURCE_LIMITS
    | TRACK_FLOWS
    | STRICT
    | UDP_BUDGET
    | SYNACK_ECN
    | SYNACK_SACK
    | SYNACK_WSCALE
    | SYNACK_TS
    | TRIGGER
    | AUTO_ENFORCE
    | FAMILIAR;
