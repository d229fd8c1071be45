//! The limiters' say: the source's buckets and penalties, and the class's ceiling.

use filter_common::stage::source;

use super::{books::Attack, *};

/// Packets left in a packet bucket of `limit` whose TAT is `tat`, at `now`.
pub(super) fn tokens(limit: &Limit, tat: u64, now: u64) -> Option<u64> {
    if limit.pkt_cost_ns == 0 {
        return None;
    }
    let backlog = tat.saturating_sub(now);
    Some(limit.pkt_burst_ns.saturating_sub(backlog) / limit.pkt_cost_ns)
}

pub(super) fn per_source(cfg: &Config, p: &Probe, packet: &ExplainPacket) -> Stage {
    if cfg.flags & flags::SOURCE_LIMITS == 0 {
        return Stage::new(StageName::PerSource, Say::Passes, "per-source limits off");
    }
    let now = p.now_ns;
    let class = packet.class();
    let Some(s) = p.source else {
        let text = match class {
            Some(k) if is_unlimited(&cfg.source[k as usize]) => {
                format!("not tracked; no {} limit", k.name())
            }
            _ => "not tracked (its first packets pass; a heavy source gets an entry)".to_string(),
        };
        return Stage::new(StageName::PerSource, Say::Passes, text)
            .with(|v| v.tracked = Some(false));
    };
    let penalties: BTreeMap<String, u64> = Class::ALL
        .iter()
        .filter(|k| s.blocked_until[**k as usize] > now)
        .map(|k| {
            let left = (s.blocked_until[*k as usize] - now).div_ceil(NS);
            (k.name().to_string(), left)
        })
        .collect();
    let penalty_text = |only: Option<Class>| -> Vec<String> {
        penalties
            .iter()
            .filter(|(k, _)| only.is_none_or(|o| o.name() == k.as_str()))
            .map(|(k, left)| format!("{k} penalty {left} s left"))
            .collect()
    };
    let offences = match s.offences {
        1 => "1 offence".to_string(),
        n => format!("{n} offences"),
    };
    let (say, mut parts, tokens_left) = match class {
        None => {
            let parts = penalty_text(None);
            let say = if penalties.is_empty() {
                Say::Passes
            } else {
                Say::Depends(vec!["--proto"], Some(Reason::SourcePenalty))
            };
            (say, parts, None)
        }
        Some(k) => {
            let c = k as usize;
            let limit = &cfg.source[c];
            let (mut pt, mut bt) = (s.pkt_tat[c], s.byte_tat[c]);
            let left = tokens(limit, s.pkt_tat[c], now);
            let said = source::judge(s.blocked_until[c], &mut pt, &mut bt, limit, MIN_FRAME, now);
            if said == Some(Reason::SourcePenalty) {
                (
                    Say::Objects(Reason::SourcePenalty),
                    penalty_text(Some(k)),
                    left,
                )
            } else if is_unlimited(limit) {
                (Say::Passes, vec![format!("no {} limit", k.name())], None)
            } else if said == Some(Reason::SourceRate) {
                (
                    Say::Objects(Reason::SourceRate),
                    vec![format!("over its {} limit", k.name())],
                    left,
                )
            } else {
                let burst = limit.pkt_burst_ns.checked_div(limit.pkt_cost_ns);
                let text = match (left, burst) {
                    (Some(l), Some(b)) => format!("{} {l} of {b} packets left", k.name()),
                    _ => format!("{} within its limit", k.name()),
                };
                (Say::Passes, vec![text], left)
            }
        }
    };
    parts.push(offences);
    // In enforce, with strict configured, a SYN the penalty refuses is answered with a
    // cookie instead (the program's PenaltyCookie), so a real client behind the address
    // still connects.
    let say = match (say, class) {
        (Say::Objects(reason), Some(class))
            if source::answered_with_cookie(cfg.flags, class, cfg.mode().objected(), reason) =>
        {
            parts.push(
                "a SYN is answered with a cookie, not dropped, where a local socket listens"
                    .to_string(),
            );
            Say::Objects(Reason::PenaltyCookie)
        }
        (say, _) => say,
    };
    if let Some(k) = class {
        // Penalties in other classes leave this packet alone, but they are the source's state.
        parts.extend(
            penalty_text(None)
                .into_iter()
                .filter(|t| !t.starts_with(&format!("{} ", k.name()))),
        );
    }
    Stage::new(
        StageName::PerSource,
        say,
        format!("tracked: {}", parts.join(", ")),
    )
    .with(|v| {
        v.tracked = Some(true);
        v.penalty_secs = penalties;
        v.tokens = tokens_left;
        v.offences = Some(s.offences);
    })
}

/// A per-CPU limit's rate, packets a second, all `cpus`.
pub(super) fn ceiling_pps(limit: &Limit, cpus: usize) -> Option<u64> {
    let per_cpu = NS.checked_div(limit.pkt_cost_ns)?;
    Some(per_cpu * cpus as u64)
}

pub(super) fn aggregate(
    books: &dyn Books,
    cfg: &Config,
    p: &Probe,
    packet: &ExplainPacket,
) -> Stage {
    let Some(k) = packet.class() else {
        let ceilings: Vec<&str> = Class::ALL
            .iter()
            .filter(|k| !is_unlimited(&cfg.aggregate[**k as usize]))
            .map(|k| k.name())
            .collect();
        let attacked: Vec<String> = Class::ALL
            .iter()
            .filter_map(|k| books.attack(*k).map(|a| (k, a)))
            .filter(|(_, a)| a.under_attack)
            .map(|(k, a)| format!("{} {}", k.name(), a.state))
            .collect();
        let attack = if attacked.is_empty() {
            "no class under attack".to_string()
        } else {
            attacked.join(", ")
        };
        return if ceilings.is_empty() {
            Stage::new(
                StageName::Aggregate,
                Say::Passes,
                format!("{attack}; no aggregate ceilings"),
            )
        } else {
            Stage::new(
                StageName::Aggregate,
                Say::Depends(vec!["--proto"], Some(Reason::Aggregate)),
                format!("{attack}; ceilings on {}", ceilings.join(", ")),
            )
        };
    };
    let attack = books.attack(k);
    let (state, age) = match &attack {
        Some(a) => (Some(a.state), a.age_secs),
        None => (None, None),
    };
    let head = match &attack {
        Some(Attack {
            state,
            baseline_pps,
            age_secs: Some(secs),
            ..
        }) => format!(
            "class {}: {state}, attack declared {secs} s ago (baseline {baseline_pps} pps)",
            k.name()
        ),
        Some(a) => format!(
            "class {}: {} (baseline {} pps)",
            k.name(),
            a.state,
            a.baseline_pps
        ),
        None => format!("class {}", k.name()),
    };
    let limit = &cfg.aggregate[k as usize];
    let (say, text, ceiling) = match p.aggregate_refusing {
        None => (Say::Passes, format!("{head}, no aggregate ceiling"), None),
        Some((refusing, cpus)) => {
            let ceiling = ceiling_pps(limit, cpus);
            let rate = match ceiling {
                Some(pps) => format!("aggregate ceiling {pps} pps"),
                None => "aggregate ceiling in bytes".to_string(),
            };
            if refusing == cpus {
                (
                    Say::Objects(Reason::Aggregate),
                    format!("{head}, {rate}, reached on every CPU"),
                    ceiling,
                )
            } else if refusing > 0 {
                (
                    Say::Depends(vec!["the receiving CPU"], Some(Reason::Aggregate)),
                    format!("{head}, {rate}, reached on {refusing} of {cpus} CPUs"),
                    ceiling,
                )
            } else {
                (
                    Say::Passes,
                    format!("{head}, {rate}, room on every CPU"),
                    ceiling,
                )
            }
        }
    };
    Stage::new(StageName::Aggregate, say, text).with(|v| {
        v.attack = state.map(str::to_string);
        v.attack_secs = age;
        v.ceiling_pps = ceiling;
    })
}
