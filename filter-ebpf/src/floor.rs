//! The benchmark floor: an XDP program that drops every packet and does nothing else, so
//! `cargo xtask bench` can state Levee's cost as a ratio to the harness's own overhead.
#![no_std]
#![no_main]

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};

#[xdp]
pub fn floor(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_DROP
}

/// Passes every packet: lets live frames into a veth (which takes them only when its peer has
/// an XDP program) for a peer that filters further up, such as nftables.
#[xdp]
pub fn floor_pass(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

/// The floor plus one BPF-to-BPF call: what a function of its own costs a packet.
#[xdp]
pub fn floor_call(_ctx: XdpContext) -> u32 {
    opaque(xdp_action::XDP_DROP)
}

#[inline(never)]
fn opaque(action: u32) -> u32 {
    core::hint::black_box(action)
}

/// The floor plus one call of a kernel helper that does almost nothing (a random number): what
/// a map lookup the verifier cannot inline costs before it does any work.
#[xdp]
pub fn floor_helper(_ctx: XdpContext) -> u32 {
    // SAFETY: a helper without arguments.
    let r = unsafe { aya_ebpf::helpers::bpf_get_prandom_u32() };
    xdp_action::XDP_DROP | (r & core::hint::black_box(0))
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
