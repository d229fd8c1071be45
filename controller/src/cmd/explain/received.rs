//! The say of the FlowSpec rules received from BGP neighbours.

use super::*;

/// Whether a rule can match the packet: no, yes, or depending on these details.
pub(super) fn rule_match(rule: &UpstreamRule, packet: &ExplainPacket) -> Option<Vec<&'static str>> {
    let (src, v6) = (abi_address(packet.source), packet.source.is_ipv6());
    if (rule.family == 6) != v6 {
        return None;
    }
    if (0..16).any(|i| src[i] & rule.src_mask[i] != rule.src[i]) {
        return None;
    }
    let mut depends = Vec::new();
    match packet.dst {
        _ if rule.dst_mask.iter().all(|b| *b == 0) => {}
        Some(dst) => {
            let dst = abi_address(dst);
            if (0..16).any(|i| dst[i] & rule.dst_mask[i] != rule.dst[i]) {
                return None;
            }
        }
        None => depends.push("--dst"),
    }
    let within = |v: u16, r: [u16; 2]| v >= r[0] && v <= r[1];
    if rule.proto != [0, 255] {
        match packet.proto {
            Some(p) if p < rule.proto[0] || p > rule.proto[1] => return None,
            Some(_) => {}
            None => depends.push("--proto"),
        }
    }
    let ported = matches!(packet.proto, Some(IPPROTO_TCP | IPPROTO_UDP));
    if rule.ports != 0 && packet.proto.is_some() && !ported {
        return None;
    }
    for (name, port, range) in [
        ("--sport", packet.sport, rule.src_port),
        ("--dport", packet.dport, rule.dst_port),
    ] {
        if range != [0, u16::MAX] {
            match port {
                Some(p) if !within(p, range) => return None,
                Some(_) => {}
                None => depends.push(name),
            }
        }
    }
    if rule.len != [0, u16::MAX] {
        depends.push("the packet's length");
    }
    Some(depends)
}

pub(super) fn received(rules: &[UpstreamRule], packet: &ExplainPacket) -> Stage {
    if rules.is_empty() {
        return Stage::new(StageName::Received, Say::Passes, "no rules received");
    }
    // The program takes the first rule that matches. A rule that may match leaves the answer
    // open, but a later rule that surely discards still decides if the earlier ones do not.
    let mut maybe: Vec<String> = Vec::new();
    let mut on: Vec<&'static str> = Vec::new();
    let mut all_discard = true;
    for (i, rule) in rules.iter().enumerate() {
        let Some(depends) = rule_match(rule, packet) else {
            continue;
        };
        let discard = rule.action == filter_common::abi::upstream_action::DISCARD;
        let what = if discard { "discard" } else { "rate limit" };
        if depends.is_empty() && discard {
            let text = format!("rule {i} of {} matches: {what}", rules.len());
            if maybe.is_empty() {
                return Stage::new(
                    StageName::Received,
                    Say::Objects(Reason::UpstreamRule),
                    text,
                );
            }
            maybe.push(text);
            // Which rule it is depends on the details; that it is discarded does not, when
            // every rule that may match first discards too.
            let say = if all_discard {
                Say::Objects(Reason::UpstreamRule)
            } else {
                Say::Depends(on, Some(Reason::UpstreamRule))
            };
            return Stage::new(StageName::Received, say, maybe.join("; "));
        }
        all_discard &= discard;
        maybe.push(format!("rule {i} of {} may match: {what}", rules.len()));
        for d in depends {
            if !on.contains(&d) {
                on.push(d);
            }
        }
        if !discard && !on.contains(&"the rule's rate") {
            on.push("the rule's rate");
        }
    }
    if maybe.is_empty() {
        return Stage::new(
            StageName::Received,
            Say::Passes,
            format!("none of {} received rules matches", rules.len()),
        );
    }
    Stage::new(
        StageName::Received,
        Say::Depends(on, Some(Reason::UpstreamRule)),
        maybe.join("; "),
    )
}
