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

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
