//! Levee's XDP program: one pass per packet.
//!
//!     parse -> BGP sessions -> allowlist -> blocklist -> signatures -> strict -> per-source limiter
//!           -> aggregate -> upstream rules (FlowSpec received from BGP neighbours)
//!           (-> a copy for `levee capture`, while one runs)
//!
//! The entry only parses, decides, counts and returns; each stage lives in its own module.
//! A SYN strict answers with a cookie goes on, by tail call, to the cookie program, and one
//! it cannot answer to a third program that runs the stages after strict on it.
//! A second program, on TC egress, records the host's flows for the strict stage.
//! While the program's own trigger holds strict on this CPU (`trigger`), the entry hands
//! every packet to `levee_held`: the same stages with strict engaged, walked by the verifier
//! on their own.
#![no_std]
#![no_main]

mod capture;
mod cookie;
mod diag;
mod egress;
mod events;
mod familiar;
mod fragment;
mod frame;
mod limiter;
mod lists;
mod maps;
mod received;
mod signature;
mod stats;
mod strict;
mod trigger;

use aya_ebpf::{
    bindings::xdp_action,
    macros::{classifier, xdp},
    programs::{TcContext, XdpContext},
};
use filter_common::{
    abi::{Action, Class, Config, Mode, Reason, flags},
    parse::{IPPROTO_TCP, IpPacket, Parsed, parse},
    stage::{signatures, source},
};

use crate::{frame::XdpFrame, limiter::Clock, strict::Strict};

/// What happens to a packet and why; counted once at the single exit.
#[derive(Clone, Copy)]
pub struct Verdict {
    pub action: Action,
    pub reason: Reason,
    pub class: Class,
}

#[xdp]
pub fn levee(ctx: XdpContext) -> u32 {
    if trigger::held_any() {
        // SAFETY: a tail call; on success it never returns.
        let _ = unsafe { maps::TAIL_CALLS.tail_call(&ctx, 3) };
        // No held program loaded: judged as the controller's settings stand.
    }
    let frame = XdpFrame::new(&ctx);
    let len = frame.byte_len();
    act(&ctx, decide(&frame, len, false), len)
}

/// `levee` while the program's trigger holds strict on this CPU: the same stages with strict
/// engaged for every class (as the controller engages it for any attacked class), the UDP
/// budget if UDP triggered, and with `auto_enforce` monitor enforcing. Reached from `levee`
/// by tail call only.
#[xdp]
pub fn levee_held(ctx: XdpContext) -> u32 {
    let frame = XdpFrame::new(&ctx);
    let len = frame.byte_len();
    act(&ctx, decide(&frame, len, true), len)
}

/// Counts a verdict and gives its XDP action, or hands the packet on to the program that
/// finishes it (a cookie to answer, a fragment to judge).
#[inline(always)]
fn act(ctx: &XdpContext, verdict: Option<Verdict>, len: u64) -> u32 {
    match verdict {
        Some(v) if v.action == Action::Drop && v.reason == Reason::SynCookie => {
            // SAFETY: a tail call; on success it never returns.
            let _ = unsafe { maps::TAIL_CALLS.tail_call(ctx, 0) };
            // No cookie program loaded: the SYN goes on to the kernel, never counted clean.
            stats::count(&pass(Reason::SynNoCookie, v.class), len);
            xdp_action::XDP_PASS
        }
        Some(v) if v.reason == Reason::PenaltyCookie => {
            // SAFETY: a tail call; on success it never returns.
            let _ = unsafe { maps::TAIL_CALLS.tail_call(ctx, 0) };
            // No cookie program loaded: the penalty drops the SYN, as it would without one.
            finish(&judge(Mode::Enforce, Reason::SourcePenalty, v.class), len)
        }
        // Strict hands TCP and UDP fragments to a program of their own (the fragment
        // signature, when on, drops them before strict with the same reason).
        Some(v)
            if v.reason == Reason::Fragment
                && v.action != Action::Pass
                && maps::CONFIG
                    .get(0)
                    .is_some_and(|c| c.flags & flags::SIG_FRAGMENTS == 0) =>
        {
            // SAFETY: a tail call; on success it never returns.
            let _ = unsafe { maps::TAIL_CALLS.tail_call(ctx, 2) };
            // No fragment program: refused, as strict refuses what it cannot account for.
            finish(&v, len)
        }
        // Unknown UDP strict would charge to a budget, while flood signatures are in force.
        Some(v) if v.reason == Reason::FloodSignature && v.action != Action::Pass => {
            // SAFETY: a tail call; on success it never returns.
            let _ = unsafe { maps::TAIL_CALLS.tail_call(ctx, 4) };
            // No signature program: the budget's refusal, as without signatures.
            finish(
                &Verdict {
                    reason: Reason::UnknownBudget,
                    ..v
                },
                len,
            )
        }
        Some(v) => finish(&v, len),
        // Only if CONFIG cannot be read, which an array map always can.
        None => xdp_action::XDP_ABORTED,
    }
}

/// TC egress: records the host's flows for the strict stage; never drops.
#[classifier]
pub fn levee_egress(ctx: TcContext) -> i32 {
    egress::record(&ctx)
}

/// Answers a SYN with a SYN cookie (XDP_TX); reached from `levee` by tail call only.
#[xdp]
pub fn levee_cookie(ctx: XdpContext) -> u32 {
    let frame = XdpFrame::new(&ctx);
    let len = frame.byte_len();
    let Some(cfg) = maps::CONFIG.get(0) else {
        return xdp_action::XDP_ABORTED;
    };
    let answered = cookie::answer_syn(&frame, cfg);
    match cookie_outcome(answered, len) {
        Some(action) => action,
        None => {
            // No cookie (syncookies off in the kernel, the listener gone, a SYN the helper
            // refuses): the stages after strict judge the SYN, in a program of their own.
            // SAFETY: a tail call; on success it never returns.
            let _ = unsafe { maps::TAIL_CALLS.tail_call(&ctx, 1) };
            stats::count(&pass(Reason::SynNoCookie, Class::TcpSyn), len);
            xdp_action::XDP_PASS
        }
    }
}

/// Counts the cookie program's answer and gives its action; None for a strict SYN it could
/// not answer (the later stages judge it). A penalised source's SYN without a cookie (no
/// listener, the kernel's syncookies off) is dropped, as the penalty would without cookies.
/// A function of its own, so its frame does not add to the answer's stack.
#[inline(never)]
fn cookie_outcome(answered: bool, len: u64) -> Option<u32> {
    let penalty = maps::SCRATCH.get(0).map_or(0, |s| s.handover.penalty);
    let (reason, action) = match (answered, penalty) {
        (true, 0) => (Reason::SynCookie, xdp_action::XDP_TX),
        (true, _) => (Reason::PenaltyCookie, xdp_action::XDP_TX),
        (false, 0) => return None,
        (false, p) if p == Reason::SourceRate as u32 => (Reason::SourceRate, xdp_action::XDP_DROP),
        (false, _) => (Reason::SourcePenalty, xdp_action::XDP_DROP),
    };
    stats::count(&judge(Mode::Enforce, reason, Class::TcpSyn), len);
    Some(action)
}

/// The stages after strict, for a SYN the cookie program could not answer (held in
/// COOKIE_PKT): the per-source limiter, the aggregate ceiling and the received rules, as
/// `check` and `judge_packet` run them. Reached from `levee_cookie` by tail call only, so
/// each program's stack and verifier walk stay their own.
#[xdp]
pub fn levee_no_cookie(ctx: XdpContext) -> u32 {
    let len = XdpFrame::new(&ctx).byte_len();
    let Some(cfg) = maps::CONFIG.get(0) else {
        return xdp_action::XDP_ABORTED;
    };
    let v = after_strict(cfg, len);
    finish(&v, len)
}

#[inline(always)]
fn after_strict(cfg: &Config, len: u64) -> Verdict {
    let no_cookie = pass(Reason::SynNoCookie, Class::TcpSyn);
    let Some(pkt) = maps::COOKIE_PKT.get(0) else {
        return no_cookie;
    };
    if pkt.proto != IPPROTO_TCP {
        return no_cookie;
    }
    // Without cookies a random-source flood would pass every stage: unknown sources share
    // the service's budget, as unknown UDP sources do under attack. Judged in the mode the
    // main program judged the SYN in (the trigger's, while it holds).
    let mode = trigger::mode(cfg, trigger::held_any());
    later_stages(
        cfg,
        mode,
        pkt,
        len,
        Reason::SynNoCookie,
        strict::service(pkt),
    )
}

/// Strict's stage for a TCP or UDP fragment (see `fragment`). Reached from `levee` by tail
/// call only.
#[xdp]
pub fn levee_fragment(ctx: XdpContext) -> u32 {
    let frame = XdpFrame::new(&ctx);
    let len = frame.byte_len();
    let Some(cfg) = maps::CONFIG.get(0) else {
        return xdp_action::XDP_ABORTED;
    };
    let v = fragment::judge_fragment(&frame, cfg, len);
    finish(&v, len)
}

/// The stages after strict, for the programs strict hands a packet to (a SYN without a
/// cookie, a fragment): the per-source limiter, the aggregate ceiling, the budget of unknown
/// sources of service `budget` if given, and the received rules, as `check` and
/// `judge_packet` run them; `passed` is the reason if none objects.
#[inline(always)]
fn later_stages(
    cfg: &Config,
    mode: Mode,
    pkt: &IpPacket,
    len: u64,
    passed: Reason,
    budget: Option<u32>,
) -> Verdict {
    let mut clock = Clock::new(cfg);
    if let Some(cpu) = maps::CPU_STATE.get_ptr_mut(0) {
        // SAFETY: a per-CPU value is only touched by this CPU, with preemption off.
        let cpu = unsafe { &mut *cpu };
        if cfg.flags & flags::SOURCE_LIMITS != 0
            && let Some(reason) = limiter::source(cfg, cpu, pkt, len, &mut clock)
        {
            return judge(mode, reason, pkt.class);
        }
        if !limiter::aggregate(cfg, cpu, pkt.class, len, &mut clock) {
            return judge(mode, Reason::Aggregate, pkt.class);
        }
    }
    if let Some(slot) = budget
        && !strict::within_budget(cfg, pkt, slot, &mut clock)
    {
        return judge(mode, Reason::UnknownBudget, pkt.class);
    }
    if cfg.flags & flags::UPSTREAM_RULES != 0
        && let Some(reason) = received::check(cfg, pkt, len)
    {
        return judge(mode, reason, pkt.class);
    }
    pass(passed, pkt.class)
}

/// Flood signatures (see `signature`): unknown, unfamiliar UDP strict would charge to its
/// service's budget, and SYNs, while signatures are in force. Reached from `levee` and
/// `levee_held` by tail call only.
#[xdp]
pub fn levee_signature(ctx: XdpContext) -> u32 {
    let frame = XdpFrame::new(&ctx);
    let len = frame.byte_len();
    let Some(cfg) = maps::CONFIG.get(0) else {
        return xdp_action::XDP_ABORTED;
    };
    let v = signature::judge(&frame, cfg, len);
    if v.action == Action::Drop && v.reason == Reason::SynCookie {
        // SAFETY: a tail call; on success it never returns.
        let _ = unsafe { maps::TAIL_CALLS.tail_call(&ctx, 0) };
        // No cookie program loaded: the SYN goes on to the kernel, never counted clean.
        stats::count(&pass(Reason::SynNoCookie, v.class), len);
        return xdp_action::XDP_PASS;
    }
    finish(&v, len)
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

/// `held`: the program's trigger holds strict on this CPU (a constant of each program).
#[inline(always)]
fn decide(frame: &XdpFrame, len: u64, held: bool) -> Option<Verdict> {
    let cfg = maps::CONFIG.get(0)?;
    let mode = if held {
        trigger::mode(cfg, true)
    } else {
        Mode::from_u32(cfg.mode)
    };
    // Not zeroed first: a zeroing of this size compiles to a call of a byte-by-byte memset,
    // which cost about 80 ns a packet. parse_into writes it whole when it says PARSED_IP.
    let mut pkt = core::mem::MaybeUninit::<IpPacket>::uninit();
    let parsed = parse_into(frame, &mut pkt);
    if parsed == PARSED_IP && cfg.sample_every != 0 {
        // Right after the parser, where few verifier states meet (see `events`).
        // SAFETY: parse_into wrote the packet (PARSED_IP).
        events::note_if_due(frame, unsafe { pkt.assume_init_ref() });
    }
    let verdict = match parsed {
        // SAFETY: parse_into wrote the packet (PARSED_IP). Borrowed in place, never copied.
        PARSED_IP => judge_packet(
            frame,
            cfg,
            mode,
            held,
            unsafe { pkt.assume_init_ref() },
            len,
        ),
        PARSED_NON_IP => pass(Reason::NonIp, Class::Other),
        reason => judge(mode, Reason::ALL[reason as usize], Class::Other),
    };
    // One call site, with the verdict packed in one register: the copy's checks are walked
    // by the verifier once per verdict, and the entry's stack does not grow.
    if cfg.flags & flags::CAPTURE != 0 {
        let src = if parsed == PARSED_IP {
            pkt.as_ptr()
        } else {
            core::ptr::null()
        };
        capture::copy(frame.ctx(), src, capture::pack(&verdict), len);
    }
    Some(verdict)
}

/// The verdict on a well-formed IP packet (and one in `sample_every` sampled).
#[inline(always)]
fn judge_packet(
    frame: &XdpFrame,
    cfg: &Config,
    mode: Mode,
    held: bool,
    pkt: &IpPacket,
    len: u64,
) -> Verdict {
    let verdict = if mode == Mode::Off {
        pass(Reason::ModeOff, pkt.class)
    } else {
        match check(frame, cfg, mode, held, pkt, len) {
            reason @ (Reason::Allowlisted | Reason::BgpSession) => pass(reason, pkt.class),
            // Rules received from BGP neighbours, on what would pass: checked here, after
            // the stages, where few verifier states meet (mid-way, they doubled the walk of
            // every later stage).
            reason @ (Reason::Clean | Reason::Flow | Reason::CookieAck | Reason::Familiar) => {
                if cfg.flags & flags::UPSTREAM_RULES != 0
                    && let Some(upstream) = received::check(cfg, pkt, len)
                {
                    judge(mode, upstream, pkt.class)
                } else {
                    pass(reason, pkt.class)
                }
            }
            reason => judge(mode, reason, pkt.class),
        }
    };
    // A SYN over its source's limit is answered with a cookie rather than dropped (strict
    // configured, so the kernel's cookie settings are Levee's): a spoofer cannot deny the
    // address it borrows a connection.
    let verdict =
        if source::answered_with_cookie(cfg.flags, verdict.class, verdict.action, verdict.reason)
            && strict::penalty_cookie(pkt, verdict.reason)
        {
            Verdict {
                reason: Reason::PenaltyCookie,
                ..verdict
            }
        } else {
            verdict
        };
    // Calm (strict not engaged): a source the per-source stage sighted, whose UDP passed,
    // is seen for `familiar`.
    if !held
        && verdict.reason == Reason::Clean
        && verdict.class == Class::Udp
        && cfg.flags & (flags::FAMILIAR | flags::STRICT) == flags::FAMILIAR
        && familiar::take_sighted()
    {
        familiar::record(cfg, pkt, Clock::new(cfg).now());
    }
    // What strict refuses of unknown sources keeps the trigger's hold alive while the flood
    // lasts (a SYN answered with a cookie never reaches the limiter's count).
    if held
        && matches!(
            verdict.reason,
            Reason::SynCookie | Reason::NoFlow | Reason::NoService | Reason::UnknownBudget
        )
    {
        trigger::renew(cfg, verdict.class as u32);
    }
    if cfg.sample_every != 0 && events::take_due(cfg, held) {
        events::sample(pkt, &verdict, len, held);
    }
    verdict
}

const PARSED_IP: u32 = u32::MAX;
const PARSED_NON_IP: u32 = u32::MAX - 1;

/// Parses the frame into `out`: [`PARSED_IP`], [`PARSED_NON_IP`] or the malformation's
/// [`Reason`]. A function of its own (a BPF-to-BPF call), so the parser's intermediate copies
/// of the packet live in a stack frame apart from the stages'.
#[inline(never)]
fn parse_into(frame: &XdpFrame, out: &mut core::mem::MaybeUninit<IpPacket>) -> u32 {
    match parse(frame) {
        Ok(Parsed::Ip(pkt)) => {
            out.write(pkt);
            PARSED_IP
        }
        Ok(Parsed::NonIp) => PARSED_NON_IP,
        Err(reason) => reason as u32,
    }
}

/// The packet `levee` handed over by tail call (a program reached so gets only the frame),
/// parsed again into FRAG_PKT, this CPU's slot: None if it no longer parses as IP, which the
/// caller passes as the main program would not have handed it over.
#[inline(always)]
fn parse_handed_over(frame: &XdpFrame) -> Option<&IpPacket> {
    let slot = maps::FRAG_PKT.get_ptr_mut(0)?;
    // SAFETY: per-CPU slot, only this CPU touches it while the program runs; an IpPacket is
    // plain data, written whole by parse_into when it says PARSED_IP.
    let out = unsafe { &mut *(slot as *mut core::mem::MaybeUninit<IpPacket>) };
    if parse_into(frame, out) != PARSED_IP {
        return None;
    }
    // SAFETY: written by parse_into (PARSED_IP).
    Some(unsafe { out.assume_init_ref() })
}

/// Runs the stages in order (the order of `filter_common::abi::Stage`, which `levee explain`
/// walks; the received rules come after, in `judge_packet`); the first that objects gives
/// the reason. `held`: strict is engaged by the program's trigger, whatever the controller
/// set.
#[inline(always)]
fn check(
    frame: &XdpFrame,
    cfg: &Config,
    mode: Mode,
    held: bool,
    pkt: &IpPacket,
    len: u64,
) -> Reason {
    // Levee's own BGP sessions, before any stage (lockdown's too) can cut them.
    if lists::bgp_session(cfg.flags, pkt) {
        return Reason::BgpSession;
    }
    let bit = lists::summary_bit(pkt);
    if lists::allowlisted(cfg.flags, pkt, bit) {
        return Reason::Allowlisted;
    }
    if mode == Mode::Lockdown {
        return Reason::Lockdown;
    }
    let mut clock = Clock::new(cfg);
    if lists::blocklisted(cfg.flags, pkt, bit, &mut clock) {
        return Reason::Blocklisted;
    }
    if let Some(reason) = signatures::judge(
        cfg.flags,
        pkt,
        &mut lists::SignatureReads {
            cfg,
            pkt,
            clock: &mut clock,
        },
    ) {
        return reason;
    }
    let mut clean = Reason::Clean;
    let mut budget = None;
    if held || cfg.flags & flags::STRICT != 0 {
        match strict::check(frame, cfg, pkt, &mut clock) {
            Strict::Unknown => {}
            Strict::Known(reason) => clean = reason,
            Strict::Refuse(reason) => return reason,
            Strict::Budget(slot) => budget = Some(slot),
        }
    }
    let Some(cpu) = maps::CPU_STATE.get_ptr_mut(0) else {
        return clean;
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
    if let Some(slot) = budget
        && !strict::within_budget(cfg, pkt, slot, &mut clock)
    {
        return Reason::UnknownBudget;
    }
    clean
}

/// Counts the verdict and gives its XDP action (a pass or would-drop passes).
#[inline(always)]
fn finish(v: &Verdict, len: u64) -> u32 {
    stats::count(v, len);
    if v.action == Action::Drop {
        xdp_action::XDP_DROP
    } else {
        xdp_action::XDP_PASS
    }
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
    Verdict {
        action: mode.objected(),
        reason,
        class,
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
