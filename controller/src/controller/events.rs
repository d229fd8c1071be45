//! What the program reports on its rings, drained ten times a second: offences (for the
//! engine) and sampled headers (for `levee top`, the attack's shape and the signature miner).

use std::{
    net::IpAddr,
    time::{Duration, Instant},
};

use filter_common::abi::{Class, Event, Sample, event};
use tracing::info;

use super::Controller;

/// Offences judged calm kept at most for a second look (a few seconds of the offence ring).
const MAX_CALM_OFFENCES: usize = 10_000;
/// Offence events logged one by one per tick; past that they are summed in one line.
const OFFENCES_LOGGED_PER_TICK: usize = 20;

impl Controller {
    /// Reads what the program reported: its rare diagnostics (forwarded to the log), offences
    /// (each logged, summed past a few per drain, and kept for the engine's next tick), then
    /// sampled headers (for `levee top`, the attack's shape and the signature miner).
    /// Runs ten times a second, so the rings rarely fill; what a full ring lost is counted.
    pub fn drain_events(&mut self) {
        let offenders = &mut self.pending_offences;
        let mut samples = Vec::new();
        for iface in &mut self.fleet.interfaces {
            // The program's rare diagnostics, forwarded to the log with the interface named.
            iface.dp.flush_log();
            let mut offences = 0usize;
            while let Some(item) = iface.offences.next() {
                let Some(e) = read_event(&item) else { continue };
                let (src, class) = (source(&e), Class::ALL.get(e.class as usize).copied());
                if let Some(class) = class {
                    offenders.push((src, class));
                }
                offences += 1;
                if offences <= OFFENCES_LOGGED_PER_TICK {
                    info!(
                        iface = %iface.name,
                        source = %src,
                        class = class.map_or("?", |c| c.name()),
                        offences = e.offences,
                        "source over its limit, penalty started"
                    );
                }
            }
            if offences > OFFENCES_LOGGED_PER_TICK {
                info!(
                    iface = %iface.name,
                    more = offences - OFFENCES_LOGGED_PER_TICK,
                    "more sources went over their limits"
                );
            }
            while let Some(item) = iface.events.next() {
                if let Some(s) = read_sample(&item)
                    && s.event.kind == event::SAMPLE
                {
                    let e = s.event;
                    samples.push(s);
                    self.telemetry
                        .top
                        .record(source(&e), e.class, e.action, e.len, s.every);
                    self.telemetry.shapes.record(
                        destination(&e),
                        e.class,
                        e.proto,
                        e.src_port,
                        e.dst_port,
                    );
                }
            }
        }
        for s in samples {
            self.signature_sample(&s.event, s.facts);
        }
    }

    /// Feeds the offences drained since the last tick to the engine, after it has seen this
    /// tick's rates: an offence in the second an attack starts is judged under attack.
    pub(super) fn judge_offences(&mut self) {
        // Only offences of verified sources may become a block of every class (`verified`);
        // the others stay penalties in their own class.
        let recent = self.calm_window();
        self.calm_offences.retain(|(t, _, _)| t.elapsed() < recent);
        let mut decisions = Vec::new();
        for (src, class) in std::mem::take(&mut self.pending_offences) {
            if !self.offence_is_evidence(src, class) {
                continue;
            }
            match self.engine.offence(src, class) {
                Some(d) => decisions.push(d),
                // Judged calm: kept a moment, in case the attack it belongs to is declared
                // at the next tick (a flood that began late in this tick's second).
                None if self.calm_offences.len() < MAX_CALM_OFFENCES => {
                    self.calm_offences.push((Instant::now(), src, class))
                }
                None => {}
            }
        }
        for decision in decisions {
            self.apply(decision);
        }
    }

    /// How long an offence judged calm waits for its attack to be declared.
    fn calm_window(&self) -> Duration {
        Duration::from_secs(u64::from(self.settings.detection.onset_secs) + 2)
    }

    /// An attack on `class` was just declared: offences of that class judged calm in the
    /// last seconds are judged again, under attack.
    pub(super) fn rejudge_calm_offences(&mut self, class: Class) {
        let recent = self.calm_window();
        self.calm_offences.retain(|(t, _, _)| t.elapsed() < recent);
        let (due, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.calm_offences)
            .into_iter()
            .partition(|(_, _, c)| *c == class);
        self.calm_offences = keep;
        let decisions: Vec<_> = due
            .into_iter()
            .filter_map(|(_, src, c)| self.engine.offence(src, c))
            .collect();
        for decision in decisions {
            self.apply(decision);
        }
    }
}

/// A record of the EVENTS ring, which starts with its [`Event`].
fn read_sample(item: &[u8]) -> Option<Sample> {
    if item.len() < std::mem::size_of::<Sample>() {
        return None;
    }
    // SAFETY: the program writes whole `Sample` records; read_unaligned copes with the
    // ring's 8-byte alignment.
    Some(unsafe { std::ptr::read_unaligned(item.as_ptr().cast()) })
}

/// One record of the OFFENCES ring, if it is whole.
fn read_event(item: &[u8]) -> Option<Event> {
    if item.len() < std::mem::size_of::<Event>() {
        return None;
    }
    // SAFETY: the program writes whole `Event` records; read_unaligned copes with the ring's
    // 8-byte alignment.
    Some(unsafe { std::ptr::read_unaligned(item.as_ptr().cast()) })
}

fn source(e: &Event) -> IpAddr {
    address(e.family, e.src)
}

fn destination(e: &Event) -> IpAddr {
    address(e.family, e.dst)
}

fn address(family: u8, a: [u8; 16]) -> IpAddr {
    if family == 6 {
        IpAddr::from(a)
    } else {
        IpAddr::from([a[0], a[1], a[2], a[3]])
    }
}
