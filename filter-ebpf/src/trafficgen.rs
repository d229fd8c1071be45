//! A traffic generator for benchmarks and tests, run with BPF_PROG_RUN in live-frames mode
//! (`BPF_F_TEST_XDP_LIVE_FRAMES`): the kernel runs it over a pool of copies of one frame and
//! sends each frame it returns XDP_TX for out of the interface given as ingress, so the frames
//! reach the veth's peer as XDP frames, the way a NIC delivers them, at millions a second.
//! Never loaded by `levee run`.
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::xdp_action,
    helpers::bpf_get_prandom_u32,
    macros::{map, xdp},
    maps::Array,
    programs::XdpContext,
};

/// Offset of the IPv4 source address in an Ethernet frame.
const IPV4_SRC: usize = 14 + 12;

/// [share, fixed source]: a frame comes from a random source when a random u32 is below
/// `share` (u32::MAX: nearly all), else from the fixed source (network byte order). A filter
/// that drops the fixed source first (a blocklist) then sees a random-source flood at
/// share/2^32 of the generator's rate, while the generator runs at full speed.
#[map]
static TRAFFICGEN: Array<u32> = Array::with_max_entries(2, 0);

/// Sends the frame as it is.
#[xdp]
pub fn trafficgen_fixed(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_TX
}

/// Sends the frame (IPv4) from a new random source address each time, or from the fixed one
/// (see [`TRAFFICGEN`]): a random-source flood. The IPv4 header checksum is left as it was,
/// so a frame that reaches the host's stack is dropped there; a filter in front of it sees
/// every frame.
#[xdp]
pub fn trafficgen_random_v4(ctx: XdpContext) -> u32 {
    let (data, end) = (ctx.data(), ctx.data_end());
    if data + IPV4_SRC + 4 > end {
        return xdp_action::XDP_ABORTED;
    }
    let (Some(share), Some(fixed)) = (TRAFFICGEN.get(0), TRAFFICGEN.get(1)) else {
        return xdp_action::XDP_ABORTED;
    };
    // SAFETY: helpers without arguments.
    let source = if unsafe { bpf_get_prandom_u32() } < *share {
        unsafe { bpf_get_prandom_u32() }
    } else {
        *fixed
    };
    // SAFETY: the four bytes are inside the frame, checked above.
    unsafe { ((data + IPV4_SRC) as *mut u32).write_unaligned(source) };
    xdp_action::XDP_TX
}

/// Offset of the IPv4 destination address in an Ethernet frame.
const IPV4_DST: usize = 14 + 16;

/// For the client end of a lab veth: passes what is addressed to the lab (198.18.0.0/15,
/// and anything not IPv4) and drops IPv4 to other addresses. SYN-ACKs the filter sends to a
/// random-source flood's spoofed addresses would leave for the Internet and never come back
/// to the clients; in the lab they would land in the clients' stack, on the same two cores.
#[xdp]
pub fn trafficgen_lab_end(ctx: XdpContext) -> u32 {
    let (data, end) = (ctx.data(), ctx.data_end());
    if data + IPV4_DST + 4 > end {
        return xdp_action::XDP_PASS;
    }
    // SAFETY: the EtherType and the destination lie inside the frame, checked above.
    let (ethertype, dst) = unsafe {
        (
            ((data + 12) as *const [u8; 2]).read_unaligned(),
            ((data + IPV4_DST) as *const [u8; 4]).read_unaligned(),
        )
    };
    if ethertype == [0x08, 0x00] && !(dst[0] == 198 && dst[1] & 0xfe == 18) {
        return xdp_action::XDP_DROP;
    }
    xdp_action::XDP_PASS
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
