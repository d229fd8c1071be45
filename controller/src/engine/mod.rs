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

use crate::config::PerClass;

/// Engine settings (the `[detection]` config section).
#[derive(Clone, Debug, PartialEq)]
pub struct EngineConfig {
    pub enabled: bool,
    /// Weight of the newest second in the baseline (0..1).
    pub baseline_alpha: f64,
    /// Static floors per class (packets/s): below these nothing is an attack.
    pub floor_pps: PerClass<u64>,
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
            floor_pps: PerClass([1_000, 20_000, 10_000, 1_000, 1_000]),
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
    /// Time spent over the onset threshold (normal) or calm (recovering), without a break.
    streak: Duration,
    /// Engine time the attack was declared (under attack or recovering since).
    attack_started: Option<Duration>,
    /// The attack's excess is spread: what the per-source stages let through is itself an
    /// attack ([`Engine::observe_unstopped`]).
    spread: bool,
}

/// The engine's state.
#[derive(Debug)]
pub struct Engine {
    config: EngineConfig,
    classes: [ClassTrack; Class::COUNT],
    /// Whether the engine switched monitor to enforce (and so may switch back).
    enforced_by_engine: bool,
    /// Offence times (engine clock) per source.
    offences: HashMap<IpAddr, Vec<Duration>>,
    /// Time observed so far: the sum of the intervals fed to [`Engine::observe`].
    now: Duration,
    /// How long no class has been under attack or recovering.
    calm_for: Duration,
}

impl Engine {
    pub fn new(config: EngineConfig) -> Engine {
        let track = ClassTrack {
            baseline: 0.0,
            state: AttackState::Normal,
            streak: Duration::ZERO,
            attack_started: None,
            spread: false,
        };
        Engine {
            config,
            classes: [track; Class::COUNT],
            enforced_by_engine: false,
            offences: HashMap::new(),
            now: Duration::ZERO,
            calm_for: Duration::ZERO,
        }
    }

    /// New settings (a reload); baselines and states carry on.
    pub fn set_config(&mut self, config: EngineConfig) {
        self.config = config;
    }

    pub fn state(&self, class: Class) -> AttackState {
        self.classes[class as usize].state
    }

    /// How long ago `class`'s attack was declared (it is under attack or recovering).
    pub fn attack_age(&self, class: Class) -> Option<Duration> {
        let started = self.classes[class as usize].attack_started?;
        Some(self.now.saturating_sub(started))
    }

    /// The rate (packets/s) over which `class` is an attack: max(floor, onset_factor x
    /// baseline).
    pub fn onset_pps(&self, class: Class) -> u64 {
        let floor = self.config.floor_pps[class] as f64;
        floor.max(self.config.onset_factor * self.classes[class as usize].baseline) as u64
    }

    pub fn baseline_pps(&self, class: Class) -> u64 {
        self.classes[class as usize].baseline as u64
    }

    /// Whether any class is under attack or recovering.
    pub fn under_attack(&self) -> bool {
        self.classes.iter().any(|c| c.state != AttackState::Normal)
    }

    /// Rates (packets/s per class, all actions) averaged over the last `elapsed`, in the
    /// current `mode`. The controller passes the time that really elapsed: after a stall
    /// this is one long interval, never several short ones.
    pub fn observe(
        &mut self,
        elapsed: Duration,
        rates: [u64; Class::COUNT],
        mode: Mode,
    ) -> Vec<Decision> {
        self.now += elapsed;
        if !self.config.enabled {
            return Vec::new();
        }
        let secs = |n: u32| Duration::from_secs(u64::from(n));
        // The baseline learns alpha per second: over a longer interval it moves further.
        let alpha = 1.0 - (1.0 - self.config.baseline_alpha).powf(elapsed.as_secs_f64());
        let mut out = Vec::new();
        let was_under_attack = self.under_attack();
        let now = self.now;
        for class in Class::ALL {
            let cfg = &self.config;
            let t = &mut self.classes[class as usize];
            let pps = rates[class as usize] as f64;
            let floor = cfg.floor_pps[class] as f64;
            let onset = floor.max(cfg.onset_factor * t.baseline);
            let calm = floor.max(cfg.recovery_factor * t.baseline);
            match t.state {
                AttackState::Normal => {
                    if pps > onset {
                        t.streak += elapsed;
                        if t.streak >= secs(cfg.onset_secs) {
                            t.state = AttackState::UnderAttack;
                            t.streak = Duration::ZERO;
                            t.attack_started = Some(now);
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
                        t.streak = Duration::ZERO;
                        // Learn only from calm seconds, so an attack never becomes normal.
                        t.baseline += alpha * (pps - t.baseline);
                    }
                }
                AttackState::UnderAttack => {
                    if pps < calm {
                        t.state = AttackState::Recovering;
                        t.streak = elapsed;
                    }
                }
                AttackState::Recovering => {
                    if pps >= calm {
                        t.state = AttackState::UnderAttack;
                        t.streak = Duration::ZERO;
                    } else {
                        t.streak += elapsed;
                        if t.streak >= secs(cfg.recovery_secs) {
                            t.state = AttackState::Normal;
                            t.streak = Duration::ZERO;
                            t.attack_started = None;
                            t.spread = false;
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
        self.calm_for = if now_under_attack {
            Duration::ZERO
        } else {
            self.calm_for + elapsed
        };
        // An enforce taken over from an earlier run ends like an attack does: after
        // `recovery_secs` without one.
        let over = was_under_attack || self.calm_for >= secs(self.config.recovery_secs);
        if self.config.auto_enforce {
            if !was_under_attack && now_under_attack && mode == Mode::Monitor {
                self.enforced_by_engine = true;
                out.push(Decision::SwitchMode { to: Mode::Enforce });
            } else if over && !now_under_attack && self.enforced_by_engine {
                self.enforced_by_engine = false;
                if mode == Mode::Enforce {
                    out.push(Decision::SwitchMode { to: Mode::Monitor });
                }
            }
        }
        self.forget_old_offences();
        out
    }

    /// Rates (packets/s per class) that no per-source stage stopped: packets of sources
    /// within their own limits, passed or refused only by strict's budget for unknown
    /// sources. Called after [`Engine::observe`] with the same interval. A class under attack
    /// whose flood has a few faces has these low (the limiter penalises its sources); a
    /// spread flood (many sources, each light) has them over the onset threshold. Hysteresis
    /// as for the attack itself: spread above the onset line, no longer below the calm one.
    pub fn observe_unstopped(&mut self, rates: [u64; Class::COUNT]) {
        for class in Class::ALL {
            let cfg = &self.config;
            let t = &mut self.classes[class as usize];
            if t.state == AttackState::Normal {
                t.spread = false;
                continue;
            }
            let pps = rates[class as usize] as f64;
            let floor = cfg.floor_pps[class] as f64;
            if !t.spread && pps > floor.max(cfg.onset_factor * t.baseline) {
                t.spread = true;
            } else if t.spread && pps < floor.max(cfg.recovery_factor * t.baseline) {
                t.spread = false;
            }
        }
    }

    /// Whether `class` is under attack (or recovering) by a spread flood: one the per-source
    /// limiter alone does not hold, so strict's budget for unknown sources applies.
    pub fn spread(&self, class: Class) -> bool {
        self.classes[class as usize].spread
    }

    /// An offence the data plane reported: `source` went over its per-source limit for
    /// `class`.
    pub fn offence(&mut self, source: IpAddr, class: Class) -> Option<Decision> {
        if !self.config.enabled || self.config.escalate_after == 0 {
            return None;
        }
        let window = self.config.offence_window;
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

    /// Whether the engine holds `enforce` (it switched `monitor` to it and may switch back).
    pub fn holds_enforce(&self) -> bool {
        self.enforced_by_engine
    }

    /// Takes over the `enforce` an earlier run's engine held (a restart mid-attack): it is
    /// released like one this engine took, once no attack has been seen for `recovery_secs`.
    pub fn adopt_enforce(&mut self) {
        self.enforced_by_engine = true;
    }

    fn forget_old_offences(&mut self) {
        let window = self.config.offence_window;
        let now = self.now;
        self.offences
            .retain(|_, times| times.iter().any(|t| now.saturating_sub(*t) < window));
    }
}

#[cfg(test)]
mod tests;
