//! Levee's XDP program: one pass per packet.
//!
//!     parse -> allowlist -> blocklist -> signatures -> per-source limiter -> aggregate -> verdict
//!
//! The entry only parses, decides, counts and returns; each stage lives in its own module.
#![no_std]
#![no_main]

mod events;
mod frame;
mod limiter;
mod lists;
mod maps;
mod stats;

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};
use filter_common::{
    abi::{Action, Class, Config, Mode, Reason, flags},
    parse::{Fragment, IPPROTO_TCP, IPPROTO_UDP, IpPacket, Parsed, impossible_tcp_flags, parse},
};

use crate::{frame::XdpFrame, limiter::Clock};

/// What happens to a packet and why; counted once at the single exit.
#[derive(Clone, Copy)]
pub struct Verdict {
    pub action: Action,
    pub reason: Reason,
    pub class: Class,
}

#[xdp]
pub fn levee(ctx: XdpContext) -> u32 {
    let frame = XdpFrame::new(&ctx);
    let len = frame.byte_len();
    match decide(&frame, len) {
        Some(v) => {
            stats::count(&v, len);
            if v.action == Action::Drop {
                xdp_action::XDP_DROP
            } else {
                xdp_action::XDP_PASS
            }
        }
        // Only if CONFIG cannot be read, which an array map always can.
        None => xdp_action::XDP_ABORTED,
    }
}

/// Clock calibration for the loader, never attached: records jiffies and the coarse monotonic
/// time of one instant, so user space can relate the two.
#[xdp]
pub fn levee_clock(_ctx: XdpContext) -> u32 {
    // SAFETY: helpers without arguments.
    let (jiffies, ns) = unsafe {
        (
            aya_ebpf::helpers::bpf_jiffies64(),
            aya_ebpf::helpers::bpf_ktime_get_coarse_ns(),
        )
    };
    if let (Some(j), Some(t)) = (maps::CLOCK.get_ptr_mut(0), maps::CLOCK.get_ptr_mut(1)) {
        // SAFETY: valid array slots.
        unsafe {
            *j = jiffies;
            *t = ns;
        }
    }
    xdp_action::XDP_PASS
}

#[inline(always)]
fn decide(frame: &XdpFrame, len: u64) -> Option<Verdict> {
    let cfg = maps::CONFIG.get(0)?;
    let mode = Mode::from_u32(cfg.mode);
    let pkt = match parse(frame) {
        Ok(Parsed::Ip(pkt)) => pkt,
        Ok(Parsed::NonIp) => return Some(pass(Reason::NonIp, Class::Other)),
        Err(reason) => return Some(judge(mode, reason, Class::Other)),
    };
    let verdict = if mode == Mode::Off {
        pass(Reason::ModeOff, pkt.class)
    } else {
        match check(cfg, mode, &pkt, len) {
            reason @ (Reason::Clean | Reason::Allowlisted) => pass(reason, pkt.class),
            reason => judge(mode, reason, pkt.class),
        }
    };
    if cfg.sample_every != 0 {
        events::maybe_sample(cfg.sample_every, &pkt, &verdict, len);
    }
    Some(verdict)
}

/// Runs the stages in order; the first that objects gives the reason.
#[inline(always)]
fn check(cfg: &Config, mode: Mode, pkt: &IpPacket, len: u64) -> Reason {
    if lists::allowlisted(cfg.flags, pkt) {
        return Reason::Allowlisted;
    }
    if mode == Mode::Lockdown {
        return Reason::Lockdown;
    }
    let mut clock = Clock::new(cfg);
    if lists::blocklisted(cfg.flags, pkt, &mut clock) {
        return Reason::Blocklisted;
    }
    if let Some(reason) = signature(cfg.flags, pkt) {
        return reason;
    }
    let Some(cpu) = maps::CPU_STATE.get_ptr_mut(0) else {
        return Reason::Clean;
    };
    // SAFETY: a per-CPU value is only touched by this CPU, and XDP runs with preemption off.
    let cpu = unsafe { &mut *cpu };
    if cfg.flags & flags::SOURCE_LIMITS != 0 {
        if let Some(reason) = limiter::source(cfg, cpu, pkt, len, &mut clock) {
            return reason;
        }
    }
    if !limiter::aggregate(cfg, cpu, pkt.class, len, &mut clock) {
        return Reason::Aggregate;
    }
    Reason::Clean
}

/// Static rules for floods no legitimate client sends.
#[inline(always)]
fn signature(f: u32, pkt: &IpPacket) -> Option<Reason> {
    if pkt.fragment != Fragment::No && f & flags::SIG_FRAGMENTS != 0 {
        return Some(Reason::Fragment);
    }
    if pkt.fragment == Fragment::Later {
        return None;
    }
    if pkt.proto == IPPROTO_TCP
        && f & flags::SIG_TCP_FLAGS != 0
        && impossible_tcp_flags(pkt.tcp_flags)
    {
        return Some(Reason::TcpFlags);
    }
    if pkt.proto == IPPROTO_UDP && f & flags::SIG_AMP_PORTS != 0 && lists::amp_port(pkt.src_port) {
        return Some(Reason::AmpPort);
    }
    None
}

#[inline(always)]
fn pass(reason: Reason, class: Class) -> Verdict {
    Verdict {
        action: Action::Pass,
        reason,
        class,
    }
}

/// The action the mode gives a packet the rules object to.
#[inline(always)]
fn judge(mode: Mode, reason: Reason, class: Class) -> Verdict {
    let action = match mode {
        Mode::Off => Action::Pass,
        Mode::Monitor => Action::WouldDrop,
        Mode::Enforce | Mode::Lockdown => Action::Drop,
    };
    Verdict {
        action,
        reason,
        class,
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
