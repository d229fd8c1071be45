//! The detection engine: plain Rust, fed once a second with per-class packet rates and with
//! the program's offence events, answering with decisions for the daemon to apply. No kernel
//! is involved, so every rule is unit-tested here.
//!
//! Per traffic class it keeps a learned baseline (an exponentially weighted moving average of
//! the rate, learned only while the class is calm) and a state:
//!
//! ```text
//! normal --(rate > onset threshold for `onset_secs`)--> under attack
//! under attack --(rate < recovery threshold)--> recovering
//! recovering --(calm for `recovery_secs`)--> normal     (back to under attack if it rises)
//! ```
//!
//! The onset threshold is max(floor, onset_factor x baseline); the recovery threshold is
//! lower (hysteresis), so a rate hovering near one line does not flap.
//!
//! Escalation: a source the data plane found over its per-source limit (an offence event) is
//! blocklisted for `block_ttl` at once while its class is under attack, and otherwise when it
//! offends `escalate_after` times within `offence_window`.
//!
//! What it never does: block a source for being part of a large crowd. Only sources over their
//! own per-source limits offend; a crowd of sources each within its limits never does.

use std::{collections::HashMap, net::IpAddr, time::Duration};

use filter_common::abi::{Class, Mode};

/// Engine settings (the `[detection]` config section).
#[derive(Clone, Debug, PartialEq)]
pub struct EngineConfig {
    pub enabled: bool,
    /// Weight of the newest second in the baseline (0..1).
    pub baseline_alpha: f64,
    /// Static floors per class (packets/s): below these nothing is an attack.
    pub floor_pps: [u64; Class::COUNT],
    /// An attack starts when the rate exceeds this many times the baseline...
    pub onset_factor: f64,
    /// ...for this many consecutive seconds.
    pub onset_secs: u32,
    /// It is over when the rate falls below this many times the baseline (and the floor)...
    pub recovery_factor: f64,
    /// ...and stays there this many seconds.
    pub recovery_secs: u32,
    /// Switch `monitor` to `enforce` while any class is under attack, and back afterwards.
    pub auto_enforce: bool,
    /// Offences of one source, within `offence_window`, that get it blocklisted.
    pub escalate_after: u32,
    pub offence_window: Duration,
    /// How long an escalated source stays blocked.
    pub block_ttl: Duration,
    /// Per-source limits of a class under attack are multiplied by this (0..1]; 1 = leave
    /// them. Tightening can push members of a large crowd over their limits, so it is off
    /// by default.
    pub tighten_factor: f64,
}

impl Default for EngineConfig {
    fn default() -> EngineConfig {
        EngineConfig {
            enabled: true,
            baseline_alpha: 0.05,
            floor_pps: [1_000, 20_000, 10_000, 1_000, 1_000],
            onset_factor: 4.0,
            onset_secs: 1,
            recovery_factor: 2.0,
            recovery_secs: 10,
            auto_enforce: true,
            escalate_after: 3,
            offence_window: Duration::from_secs(60),
            block_ttl: Duration::from_secs(600),
            tighten_factor: 1.0,
        }
    }
}

/// Attack state of one class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttackState {
    Normal,
    UnderAttack,
    Recovering,
}

impl AttackState {
    pub fn name(self) -> &'static str {
        match self {
            AttackState::Normal => "normal",
            AttackState::UnderAttack => "under_attack",
            AttackState::Recovering => "recovering",
        }
    }
}

/// What the engine decided; the daemon applies it, logs it as one line, and counts it.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    AttackStarted {
        class: Class,
        pps: u64,
        baseline_pps: u64,
    },
    AttackEnded {
        class: Class,
    },
    SwitchMode {
        to: Mode,
    },
    /// Scale the per-source limits of `class` by `factor` (1.0 restores them).
    ScaleLimits {
        class: Class,
        factor: f64,
    },
    Block {
        source: IpAddr,
        ttl: Duration,
        offences: u32,
    },
}

impl Decision {
    /// A short name, for counting decisions by kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Decision::AttackStarted { .. } => "attack_started",
            Decision::AttackEnded { .. } => "attack_ended",
            Decision::SwitchMode { .. } => "switch_mode",
            Decision::ScaleLimits { .. } => "scale_limits",
            Decision::Block { .. } => "block",
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct ClassTrack {
    baseline: f64,
    state: AttackState,
    /// Consecutive seconds over the onset threshold (normal) or calm (recovering).
    streak: u32,
}

/// The engine's state.
#[derive(Debug)]
pub struct Engine {
    config: EngineConfig,
    classes: [ClassTrack; Class::COUNT],
    /// Whether the engine switched monitor to enforce (and so may switch back).
    enforced_by_engine: bool,
    /// Offence times (engine seconds) per source.
    offences: HashMap<IpAddr, Vec<u64>>,
    /// Seconds observed so far.
    now: u64,
}

impl Engine {
    pub fn new(config: EngineConfig) -> Engine {
        let track = ClassTrack {
            baseline: 0.0,
            state: AttackState::Normal,
            streak: 0,
        };
        Engine {
            config,
            classes: [track; Class::COUNT],
            enforced_by_engine: false,
            offences: HashMap::new(),
            now: 0,
        }
    }

    /// New settings (a reload); baselines and states carry on.
    pub fn set_config(&mut self, config: EngineConfig) {
        self.config = config;
    }

    pub fn state(&self, class: Class) -> AttackState {
        self.classes[class as usize].state
    }

    pub fn baseline_pps(&self, class: Class) -> u64 {
        self.classes[class as usize].baseline as u64
    }

    /// Whether any class is under attack or recovering.
    pub fn under_attack(&self) -> bool {
        self.classes.iter().any(|c| c.state != AttackState::Normal)
    }

    /// One second of rates (packets/s per class, all actions) in the current `mode`.
    pub fn observe(&mut self, rates: [u64; Class::COUNT], mode: Mode) -> Vec<Decision> {
        self.now += 1;
        if !self.config.enabled {
            return Vec::new();
        }
        let mut out = Vec::new();
        let was_under_attack = self.under_attack();
        for class in Class::ALL {
            let cfg = &self.config;
            let t = &mut self.classes[class as usize];
            let pps = rates[class as usize] as f64;
            let floor = cfg.floor_pps[class as usize] as f64;
            let onset = floor.max(cfg.onset_factor * t.baseline);
            let calm = floor.max(cfg.recovery_factor * t.baseline);
            match t.state {
                AttackState::Normal => {
                    if pps > onset {
                        t.streak += 1;
                        if t.streak >= cfg.onset_secs {
                            t.state = AttackState::UnderAttack;
                            t.streak = 0;
                            out.push(Decision::AttackStarted {
                                class,
                                pps: pps as u64,
                                baseline_pps: t.baseline as u64,
                            });
                            if cfg.tighten_factor < 1.0 {
                                out.push(Decision::ScaleLimits {
                                    class,
                                    factor: cfg.tighten_factor,
                                });
                            }
                        }
                    } else {
                        t.streak = 0;
                        // Learn only from calm seconds, so an attack never becomes normal.
                        t.baseline += cfg.baseline_alpha * (pps - t.baseline);
                    }
                }
                AttackState::UnderAttack => {
                    if pps < calm {
                        t.state = AttackState::Recovering;
                        t.streak = 1;
                    }
                }
                AttackState::Recovering => {
                    if pps >= calm {
                        t.state = AttackState::UnderAttack;
                        t.streak = 0;
                    } else {
                        t.streak += 1;
                        if t.streak >= cfg.recovery_secs {
                            t.state = AttackState::Normal;
                            t.streak = 0;
                            out.push(Decision::AttackEnded { class });
                            if cfg.tighten_factor < 1.0 {
                                out.push(Decision::ScaleLimits { class, factor: 1.0 });
                            }
                        }
                    }
                }
            }
        }
        let now_under_attack = self.under_attack();
        if self.config.auto_enforce {
            if !was_under_attack && now_under_attack && mode == Mode::Monitor {
                self.enforced_by_engine = true;
                out.push(Decision::SwitchMode { to: Mode::Enforce });
            } else if was_under_attack && !now_under_attack && self.enforced_by_engine {
                self.enforced_by_engine = false;
                if mode == Mode::Enforce {
                    out.push(Decision::SwitchMode { to: Mode::Monitor });
                }
            }
        }
        self.forget_old_offences();
        out
    }

    /// An offence the data plane reported: `source` went over its per-source limit for
    /// `class`.
    pub fn offence(&mut self, source: IpAddr, class: Class) -> Option<Decision> {
        if !self.config.enabled || self.config.escalate_after == 0 {
            return None;
        }
        let window = self.config.offence_window.as_secs();
        let times = self.offences.entry(source).or_default();
        times.retain(|t| self.now.saturating_sub(*t) < window);
        times.push(self.now);
        let count = times.len() as u32;
        let attacked = self.classes[class as usize].state != AttackState::Normal;
        if attacked || count >= self.config.escalate_after {
            self.offences.remove(&source);
            return Some(Decision::Block {
                source,
                ttl: self.config.block_ttl,
                offences: count,
            });
        }
        None
    }

    /// The operator changed the mode: the engine no longer owns it.
    pub fn mode_set_by_operator(&mut self) {
        self.enforced_by_engine = false;
    }

    fn forget_old_offences(&mut self) {
        let window = self.config.offence_window.as_secs();
        let now = self.now;
        self.offences
            .retain(|_, times| times.iter().any(|t| now.saturating_sub(*t) < window));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UDP: usize = Class::Udp as usize;

    fn rates(udp: u64) -> [u64; Class::COUNT] {
        let mut r = [100; Class::COUNT];
        r[UDP] = udp;
        r
    }

    /// An engine that has learned a calm UDP baseline of about 5000 pps.
    fn calm_engine() -> Engine {
        let mut e = Engine::new(EngineConfig::default());
        for _ in 0..200 {
            assert!(e.observe(rates(5_000), Mode::Monitor).is_empty());
        }
        assert!((4_900..=5_000).contains(&e.baseline_pps(Class::Udp)));
        e
    }

    #[test]
    fn onset_is_declared_in_the_first_second_over_the_threshold() {
        let mut e = calm_engine();
        let d = e.observe(rates(200_000), Mode::Monitor);
        assert_eq!(
            d[0],
            Decision::AttackStarted {
                class: Class::Udp,
                pps: 200_000,
                baseline_pps: e.baseline_pps(Class::Udp)
            }
        );
        assert_eq!(d[1], Decision::SwitchMode { to: Mode::Enforce });
        assert_eq!(e.state(Class::Udp), AttackState::UnderAttack);
        assert_eq!(e.state(Class::TcpSyn), AttackState::Normal);
    }

    #[test]
    fn growth_within_the_factor_or_under_the_floor_is_no_attack() {
        let mut e = calm_engine();
        // 3x the baseline: below the 4x onset factor.
        for _ in 0..30 {
            assert!(e.observe(rates(15_000), Mode::Monitor).is_empty());
        }
        // A class with a tiny baseline stays calm below its floor.
        let mut e = Engine::new(EngineConfig::default());
        let mut r = rates(0);
        for _ in 0..50 {
            r[Class::Icmp as usize] = 10;
            e.observe(r, Mode::Monitor);
        }
        r[Class::Icmp as usize] = 900;
        assert!(
            e.observe(r, Mode::Monitor).is_empty(),
            "40x a tiny baseline, under the floor"
        );
    }

    #[test]
    fn hysteresis_keeps_a_hovering_rate_from_flapping() {
        let mut e = calm_engine();
        e.observe(rates(100_000), Mode::Enforce);
        // Between the recovery line (2x baseline, 10k) and the onset line (4x, 20k): the
        // attack neither ends nor restarts, whatever the rate does in that band.
        let mut decisions = Vec::new();
        for i in 0..60 {
            let pps = if i % 2 == 0 { 12_000 } else { 19_000 };
            decisions.extend(e.observe(rates(pps), Mode::Enforce));
        }
        assert!(decisions.is_empty(), "{decisions:?}");
        assert_eq!(e.state(Class::Udp), AttackState::UnderAttack);
    }

    #[test]
    fn recovery_needs_calm_seconds_and_restores_monitor() {
        let mut e = calm_engine();
        e.observe(rates(100_000), Mode::Monitor);
        let mut d = Vec::new();
        for _ in 0..9 {
            d.extend(e.observe(rates(5_000), Mode::Enforce));
        }
        assert!(d.is_empty());
        assert_eq!(e.state(Class::Udp), AttackState::Recovering);
        // A relapse while recovering goes back to under attack, without a second "started".
        assert!(e.observe(rates(50_000), Mode::Enforce).is_empty());
        assert_eq!(e.state(Class::Udp), AttackState::UnderAttack);
        for _ in 0..9 {
            assert!(e.observe(rates(5_000), Mode::Enforce).is_empty());
        }
        let d = e.observe(rates(5_000), Mode::Enforce);
        assert_eq!(
            d,
            vec![
                Decision::AttackEnded { class: Class::Udp },
                Decision::SwitchMode { to: Mode::Monitor }
            ]
        );
        // The baseline did not learn the attack.
        assert!(e.baseline_pps(Class::Udp) <= 5_000);
    }

    #[test]
    fn an_operator_choice_of_mode_is_not_undone() {
        let mut e = calm_engine();
        // Already enforcing: the engine does not switch, so it does not switch back either.
        assert_eq!(e.observe(rates(100_000), Mode::Enforce).len(), 1);
        for _ in 0..10 {
            e.observe(rates(5_000), Mode::Enforce);
        }
        assert!(!e.under_attack());
        // Switched by the engine, then the operator took over.
        e.observe(rates(100_000), Mode::Monitor);
        e.mode_set_by_operator();
        let mut d = Vec::new();
        for _ in 0..10 {
            d.extend(e.observe(rates(5_000), Mode::Enforce));
        }
        assert_eq!(d, vec![Decision::AttackEnded { class: Class::Udp }]);
    }

    #[test]
    fn repeat_offenders_are_escalated_and_one_offence_is_not() {
        let mut e = calm_engine();
        let flooder: IpAddr = "198.51.100.7".parse().unwrap();
        let once: IpAddr = "198.51.100.8".parse().unwrap();
        assert_eq!(e.offence(once, Class::Udp), None);
        assert_eq!(e.offence(flooder, Class::Udp), None);
        e.observe(rates(5_000), Mode::Enforce);
        assert_eq!(e.offence(flooder, Class::Udp), None);
        assert_eq!(
            e.offence(flooder, Class::Udp),
            Some(Decision::Block {
                source: flooder,
                ttl: Duration::from_secs(600),
                offences: 3
            })
        );
        // Offences older than the window are forgotten.
        assert_eq!(e.offence(once, Class::Udp), None);
        for _ in 0..61 {
            e.observe(rates(5_000), Mode::Enforce);
        }
        assert_eq!(
            e.offence(once, Class::Udp),
            None,
            "two offences a minute apart"
        );
    }

    /// A flash crowd: the rate of a class jumps twentyfold because many sources come, each
    /// within its limits. The engine may call it an attack (rates cannot tell), but since no
    /// crowd source offends, none is ever blocked.
    #[test]
    fn a_flash_crowd_is_never_blocked_for_being_large() {
        let mut e = calm_engine();
        let mut blocks = Vec::new();
        for _ in 0..120 {
            let d = e.observe(rates(100_000), Mode::Enforce);
            blocks.extend(
                d.into_iter()
                    .filter(|d| matches!(d, Decision::Block { .. })),
            );
        }
        assert!(blocks.is_empty());
        // Individual crowd members that each offend once (a burst at the edge of their limit)
        // are not escalated either.
        e.observe(rates(5_000), Mode::Enforce);
        let mut e = calm_engine();
        for i in 0..10_000u32 {
            let member = IpAddr::from((0xc633_6400u32 + i).to_be_bytes());
            assert_eq!(e.offence(member, Class::Udp), None);
        }
    }

    #[test]
    fn disabled_engine_decides_nothing() {
        let mut e = Engine::new(EngineConfig {
            enabled: false,
            ..EngineConfig::default()
        });
        assert!(e.observe(rates(10_000_000), Mode::Monitor).is_empty());
        assert_eq!(e.offence("192.0.2.1".parse().unwrap(), Class::Udp), None);
    }
}

#[cfg(test)]
mod attack_tests {
    use super::*;

    #[test]
    fn under_attack_an_offender_is_blocked_at_once_and_calm_classes_stay_lenient() {
        let mut e = Engine::new(EngineConfig::default());
        let mut r = [100; Class::COUNT];
        for _ in 0..100 {
            r[Class::Udp as usize] = 5_000;
            e.observe(r, Mode::Enforce);
        }
        r[Class::Udp as usize] = 300_000;
        e.observe(r, Mode::Enforce);
        let flooder: IpAddr = "2001:db8::66".parse().unwrap();
        assert_eq!(
            e.offence(flooder, Class::Udp),
            Some(Decision::Block {
                source: flooder,
                ttl: Duration::from_secs(600),
                offences: 1
            })
        );
        assert_eq!(e.offence("192.0.2.9".parse().unwrap(), Class::TcpSyn), None);
    }
}

#[cfg(test)]
mod tighten_tests {
    use super::*;

    #[test]
    fn tightening_is_off_by_default_and_restored_after_the_attack() {
        let run = |factor: f64| {
            let mut e = Engine::new(EngineConfig {
                tighten_factor: factor,
                ..EngineConfig::default()
            });
            let mut r = [100; Class::COUNT];
            let mut d = Vec::new();
            for pps in std::iter::repeat_n(5_000, 100)
                .chain([300_000])
                .chain(std::iter::repeat_n(5_000, 10))
            {
                r[Class::Udp as usize] = pps;
                d.extend(e.observe(r, Mode::Enforce));
            }
            d.into_iter()
                .filter(|d| matches!(d, Decision::ScaleLimits { .. }))
                .collect::<Vec<_>>()
        };
        assert!(run(1.0).is_empty());
        assert_eq!(
            run(0.5),
            vec![
                Decision::ScaleLimits {
                    class: Class::Udp,
                    factor: 0.5
                },
                Decision::ScaleLimits {
                    class: Class::Udp,
                    factor: 1.0
                }
            ]
        );
    }
}
