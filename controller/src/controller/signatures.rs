//! Flood signatures in the controller (see [`crate::signatures`]): sampled headers fed to the
//! miners (UDP, SYNs), the book kept in step with the program every tick, each signature's
//! life logged, and the sampling rate the miners need.

use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

use filter_common::{
    abi::{Class, Event, Reason},
    signature::Facts,
};
use tracing::{error, info};

use super::Controller;
use crate::{
    engine::AttackState,
    signatures::{Book, Change, Text, mine::Miner},
};

/// How long a calm sample waits before it counts as calm: a flood's first second, before
/// detection declares it, must not teach the miner that the flood is the crowd.
const CALM_DELAY: Duration = Duration::from_secs(3);
/// Samples a second the controller aims for while calm (see [`Flood::sample_every`]).
const SAMPLES_PER_SECOND: u64 = 500;
/// The densest sampling: one in 4. A flood's first second, before the controller sees its
/// rate (and where the program's trigger does not hold: it samples one in 1024 at most),
/// then costs a sample every 4 packets, not every packet.
const DENSEST_SAMPLING: u64 = 4;

/// What the controller keeps of flood signatures.
#[derive(Debug, Default)]
pub(crate) struct Flood {
    pub book: Book,
    /// UDP's miner, then SYNs'.
    miners: [ClassMiner; 2],
    /// The sampling rate written to the program: the config's `events.sample_every` while
    /// traffic is heavy, denser while it is light, so the miner knows what the crowd sends.
    pub sample_every: Option<u32>,
}

/// One class's samples: the miner's, and calm ones not yet [`CALM_DELAY`] old.
#[derive(Debug, Default)]
struct ClassMiner {
    miner: Miner,
    pending: VecDeque<(Instant, Facts)>,
}

/// The classes signatures are mined for, with their IP protocol, in [`Flood::miners`] order.
const CLASSES: [(Class, u8); 2] = [(Class::Udp, 17), (Class::TcpSyn, 6)];

impl Controller {
    /// Whether signatures of `class` apply now: unknown UDP sources are charged to their
    /// service's budget, or strict answers SYNs with cookies in an attack on SYNs (the
    /// controller's decision or the program's trigger).
    fn signatures_apply(&self, class: Class) -> bool {
        let held = self.strict.trigger.held.contains(&class);
        match class {
            Class::Udp => self.strict.udp_budget || held,
            _ => held || (self.strict.engaged && self.engine.state(class) != AttackState::Normal),
        }
    }

    /// Takes one sampled header for its class's miner.
    pub(super) fn signature_sample(&mut self, e: &Event, facts: Facts) {
        let Some(i) = CLASSES
            .iter()
            .position(|(c, proto)| e.class == *c as u32 && facts.proto == *proto)
        else {
            return;
        };
        let class = CLASSES[i].0;
        let Some(reason) = Reason::ALL.get(e.reason as usize).copied() else {
            return;
        };
        let now = Instant::now();
        let calm = self.engine.state(class) == AttackState::Normal;
        let applies = self.signatures_apply(class);
        let m = &mut self.flood.miners[i];
        if reason.known_source() {
            m.miner.calm_sample(facts);
        } else if applies {
            if reason.unstopped() {
                m.miner.attack_sample(now, facts);
            }
        } else if calm && reason == Reason::Clean {
            m.pending.push_back((now, facts));
        }
    }

    /// Once a tick: renews what matched, drops what is over, mines a new signature while
    /// one applies, and writes the table if it changed.
    pub(super) fn update_signatures(&mut self) {
        let now = Instant::now();
        let applies = CLASSES.map(|(class, _)| self.signatures_apply(class));
        for (i, (class, _)) in CLASSES.iter().enumerate() {
            let calm = self.engine.state(*class) == AttackState::Normal && !applies[i];
            let m = &mut self.flood.miners[i];
            // Calm samples count once no attack followed them.
            if !calm {
                m.pending.clear();
            }
            while let Some((t, f)) = m.pending.front().copied() {
                if now.duration_since(t) < CALM_DELAY {
                    break;
                }
                m.pending.pop_front();
                m.miner.calm_sample(f);
            }
            if !applies[i] {
                m.miner.attack_over();
            }
        }
        let before = self.flood.book.table();
        let mut changes = match self.fleet.signature_hits() {
            Ok(hits) => self.flood.book.renew(&hits, now),
            Err(e) => {
                self.telemetry.count_error();
                error!("cannot read the flood signatures' drops: {e:#}");
                Vec::new()
            }
        };
        let attacked = |proto: u8| {
            CLASSES
                .iter()
                .zip(applies)
                .any(|((_, p), applies)| *p == proto && applies)
        };
        changes.extend(self.flood.book.expire(attacked, now));
        for (i, applies) in applies.into_iter().enumerate() {
            if applies
                && let Some(c) = self.flood.miners[i].miner.mine(now, &before)
                && let Some(found) = self.flood.book.add(&c, now)
            {
                changes.push(found);
            }
        }
        let table = self.flood.book.table();
        if table != before {
            if let Err(e) = self.fleet.set_signatures(&table, &before) {
                self.telemetry.count_error();
                error!("cannot write the flood signatures, the earlier ones stay: {e:#}");
                // The book follows the program: what was not written is not in force.
                self.flood
                    .book
                    .active
                    .retain(|a| before.iter().any(|b| b.id == a.id));
                return;
            }
            if let Ok(hits) = self.fleet.signature_hits() {
                self.flood.book.rebase(&hits);
            }
        }
        for change in changes {
            self.log_signature(&change);
        }
    }

    fn log_signature(&mut self, change: &Change) {
        let text = |id: u32| {
            self.flood
                .book
                .get(id)
                .map(|a| Text(a.signature).to_string())
                .unwrap_or_default()
        };
        match change {
            Change::Found(id) => {
                let a = self.flood.book.get(*id).expect("just added");
                self.telemetry.count_signature_found();
                info!(
                    id,
                    signature = %Text(a.signature),
                    attack_cover = format!("{:.1}%", a.attack_cover * 100.0),
                    calm_cover = format!("{:.1}%", a.calm_cover * 100.0),
                    "flood signature found, enforced"
                );
            }
            Change::Renewed(id) => info!(id, signature = %text(*id), "flood signature renewed"),
            Change::Dropped(id, why) => info!(id, why, "flood signature dropped"),
        }
    }

    /// The sampling rate for the program: one in `events.sample_every` at most, denser while
    /// traffic is light (about [`SAMPLES_PER_SECOND`], one in [`DENSEST_SAMPLING`] at the
    /// densest); 0 keeps sampling off.
    pub(crate) fn sample_every(&self) -> u32 {
        let configured = self.settings.events.sample_every;
        self.flood
            .sample_every
            .unwrap_or(configured)
            .min(configured)
    }

    /// Once a tick: moves the sampling rate with the traffic, when it is off by half or more.
    pub(super) fn update_sampling(&mut self) {
        let configured = self.settings.events.sample_every;
        if configured == 0 {
            return;
        }
        let r = self.telemetry.rates();
        let pps = r.pass_pps + r.drop_pps;
        let want = (pps / SAMPLES_PER_SECOND)
            .max(DENSEST_SAMPLING)
            .min(u64::from(configured))
            .max(1) as u32;
        let now = self.sample_every();
        if want == now || (want < now * 2 && want * 2 > now) {
            return;
        }
        let before = self.flood.sample_every;
        self.flood.sample_every = Some(want);
        if let Err(e) = self.write_config() {
            self.flood.sample_every = before;
            self.telemetry.count_error();
            error!("cannot change the sampling rate: {e:#}");
            return;
        }
        if want < now
            && let Err(e) = self.fleet.sample_sooner()
        {
            self.telemetry.count_error();
            error!("cannot restart the sampling countdown: {e:#}");
        }
    }
}
