//! Finding a flood's fingerprint in sampled headers: the smallest set of fields that at least
//! [`ATTACK_COVER`] of the attack's samples share and at most [`CALM_COVER`] of what the same
//! service received from legitimate sources does.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use filter_common::signature::{Facts, FloodSignature, PAYLOAD_BYTES, field};

/// The share of the attack's samples a signature must match.
pub const ATTACK_COVER: f64 = 0.95;
/// The share of the service's legitimate samples it may match at most.
pub const CALM_COVER: f64 = 0.01;
/// Attack samples needed before mining: fewer say nothing about a flood.
pub const MIN_ATTACK_SAMPLES: usize = 50;
/// Legitimate samples of the service needed: without them "at most 1%" is not known.
pub const MIN_CALM_SAMPLES: usize = 20;
/// How far back the attack's samples reach.
const ATTACK_WINDOW: Duration = Duration::from_secs(3);
const MAX_ATTACK_SAMPLES: usize = 20_000;
/// Legitimate samples kept per destination port, and ports kept.
const CALM_PER_PORT: usize = 2_000;
const MAX_CALM_PORTS: usize = 1_024;

/// One field test: which field, and the facts and payload mask that hold its value.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Atom {
    field: u32,
    facts: Facts,
    mask: [u8; PAYLOAD_BYTES],
}

/// A signature the miner proposes, with what it covers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Candidate {
    pub signature: FloodSignature,
    /// Shares of the attack's and of the legitimate samples it matches.
    pub attack_cover: f64,
    pub calm_cover: f64,
    pub attack_samples: usize,
    pub calm_samples: usize,
}

/// The samples the miner works from.
#[derive(Debug, Default)]
pub struct Miner {
    /// Unknown sources' UDP while the class is under attack.
    attack: VecDeque<(Instant, Facts)>,
    /// What each port received while calm, and from known sources since.
    calm: HashMap<u16, VecDeque<Facts>>,
}

impl Miner {
    pub fn attack_sample(&mut self, now: Instant, facts: Facts) {
        if self.attack.len() >= MAX_ATTACK_SAMPLES {
            self.attack.pop_front();
        }
        self.attack.push_back((now, facts));
    }

    pub fn calm_sample(&mut self, facts: Facts) {
        if self.calm.len() >= MAX_CALM_PORTS && !self.calm.contains_key(&facts.dst_port) {
            return;
        }
        let port = self.calm.entry(facts.dst_port).or_default();
        if port.len() >= CALM_PER_PORT {
            port.pop_front();
        }
        port.push_back(facts);
    }

    /// Forgets the attack's samples (the attack ended).
    pub fn attack_over(&mut self) {
        self.attack.clear();
    }

    /// The attack's samples of the last seconds that `covered` does not match yet (a flood
    /// of two shapes gets one signature each).
    fn attack_samples(&self, now: Instant, covered: &[FloodSignature]) -> Vec<Facts> {
        self.attack
            .iter()
            .filter(|(t, _)| now.duration_since(*t) <= ATTACK_WINDOW)
            .map(|(_, f)| *f)
            .filter(|f| !covered.iter().any(|s| s.matches(f)))
            .collect()
    }

    /// The most selective signature of the attack's samples not yet covered, if one meets
    /// both bounds.
    pub fn mine(&self, now: Instant, covered: &[FloodSignature]) -> Option<Candidate> {
        let attack = self.attack_samples(now, covered);
        if attack.len() < MIN_ATTACK_SAMPLES {
            return None;
        }
        let atoms = atoms(&attack);
        // A signature belongs to one service: its port is always part of it.
        let port = atoms.iter().find(|a| a.field == field::DST_PORT)?;
        let calm: Vec<Facts> = self
            .calm
            .get(&port.facts.dst_port)?
            .iter()
            .copied()
            .collect();
        if calm.len() < MIN_CALM_SAMPLES {
            return None;
        }
        let mut chosen = vec![*port];
        // Greedy: add the field that leaves the least of the calm traffic matched, in order
        // of preference on ties, until the calm share is small enough.
        loop {
            let sig = signature(&chosen);
            let calm_cover = share(&sig, &calm);
            if chosen.len() > 1 && calm_cover <= CALM_COVER {
                return Some(Candidate {
                    signature: sig,
                    attack_cover: share(&sig, &attack),
                    calm_cover,
                    attack_samples: attack.len(),
                    calm_samples: calm.len(),
                });
            }
            let best = atoms
                .iter()
                .filter(|a| !chosen.iter().any(|c| c.field == a.field))
                .filter_map(|a| {
                    let mut with = chosen.clone();
                    with.push(*a);
                    let sig = signature(&with);
                    (share(&sig, &attack) >= ATTACK_COVER).then(|| (share(&sig, &calm), *a))
                })
                .min_by(|x, y| x.0.total_cmp(&y.0))?;
            chosen.push(best.1);
        }
    }
}

/// The share of `samples` that `sig` matches.
fn share(sig: &FloodSignature, samples: &[Facts]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    samples.iter().filter(|f| sig.matches(f)).count() as f64 / samples.len() as f64
}

fn signature(atoms: &[Atom]) -> FloodSignature {
    let mut sig = FloodSignature::default();
    for a in atoms {
        sig.fields |= a.field;
        let (s, f) = (&mut sig.facts, &a.facts);
        s.proto = f.proto;
        match a.field {
            field::DST_PORT => s.dst_port = f.dst_port,
            field::SRC_PORT => s.src_port = f.src_port,
            field::IP_LEN => s.ip_len = f.ip_len,
            field::TTL => s.ttl = f.ttl,
            field::IP_ID => s.ip_id = f.ip_id,
            _ => {
                s.payload = f.payload;
                sig.payload_mask = a.mask;
            }
        }
    }
    sig
}

/// The value most samples share, and its count (ties to the smallest, for a stable answer).
fn dominant<K: Copy + Ord + std::hash::Hash>(
    values: impl Iterator<Item = K>,
) -> Option<(K, usize)> {
    let mut counts: HashMap<K, usize> = HashMap::new();
    for v in values {
        *counts.entry(v).or_default() += 1;
    }
    counts
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
}

/// Every field whose one value at least [`ATTACK_COVER`] of the samples share, in order of
/// preference (on a tie the miner takes the first): the payload, the length, the source
/// port, the IP id, the TTL; and the destination port.
fn atoms(attack: &[Facts]) -> Vec<Atom> {
    let n = attack.len();
    let enough = |count: usize| count as f64 >= ATTACK_COVER * n as f64;
    let proto = dominant(attack.iter().map(|f| f.proto)).map_or(0, |(p, _)| p);
    let mut out = Vec::new();
    let scalar = |field: u32, get: fn(&Facts) -> u16, set: fn(&mut Facts, u16)| {
        let (v, count) = dominant(attack.iter().map(get))?;
        if !enough(count) {
            return None;
        }
        let mut facts = Facts {
            proto,
            ..Facts::default()
        };
        set(&mut facts, v);
        Some(Atom {
            field,
            facts,
            mask: [0; PAYLOAD_BYTES],
        })
    };
    let mut payload_atom = None;
    // The payload: the bytes at fixed offsets most samples share.
    {
        let mut facts = Facts {
            proto,
            payload_len: PAYLOAD_BYTES as u8,
            ..Facts::default()
        };
        let mut mask = [0u8; PAYLOAD_BYTES];
        for (i, m) in mask.iter_mut().enumerate() {
            let with = attack
                .iter()
                .filter(|f| f.payload_len as usize == PAYLOAD_BYTES)
                .map(|f| f.payload[i]);
            if let Some((b, count)) = dominant(with)
                && enough(count)
            {
                facts.payload[i] = b;
                *m = 0xff;
            }
        }
        // Bytes shared one by one may not be shared together: drop the last until they are.
        while mask.iter().any(|m| *m != 0) {
            let atom = Atom {
                field: field::PAYLOAD,
                facts,
                mask,
            };
            if enough(
                attack
                    .iter()
                    .filter(|f| signature(&[atom]).matches(f))
                    .count(),
            ) {
                payload_atom = Some(atom);
                break;
            }
            if let Some(last) = mask.iter().rposition(|m| *m != 0) {
                mask[last] = 0;
            }
        }
    }
    out.extend(payload_atom);
    out.extend(scalar(field::IP_LEN, |f| f.ip_len, |f, v| f.ip_len = v));
    out.extend(scalar(
        field::SRC_PORT,
        |f| f.src_port,
        |f, v| f.src_port = v,
    ));
    out.extend(scalar(field::IP_ID, |f| f.ip_id, |f, v| f.ip_id = v));
    out.extend(scalar(field::TTL, |f| f.ttl as u16, |f, v| f.ttl = v as u8));
    out.extend(scalar(
        field::DST_PORT,
        |f| f.dst_port,
        |f, v| f.dst_port = v,
    ));
    out
}

#[cfg(test)]
mod tests;
