//! Strict's say: services, flows, sockets and the budget of unknown sources.

use super::*;

pub(super) fn strict(dp: &Dataplane, cfg: &Config, packet: &ExplainPacket) -> Result<Stage> {
    // The program's trigger may hold strict on some CPUs while the controller has not
    // engaged it (a spread flood's first second).
    let held = dp.trigger_held(cfg)?;
    let engaged = match (cfg.flags & flags::STRICT != 0, held.cpus) {
        (true, _) => "engaged".to_string(),
        (false, 0) => return Ok(Stage::new(StageName::Strict, Say::Passes, "not engaged")),
        (false, n) => format!(
            "engaged by the program's trigger on {n} of {} CPUs",
            held.of
        ),
    };
    let v6 = packet.source.is_ipv6();
    let (proto, name) = match packet.proto {
        None => {
            return Ok(Stage::new(
                StageName::Strict,
                Say::Depends(vec!["--proto"], Some(Reason::NoService)),
                format!("{engaged}: TCP and UDP pass only to a service or in a flow of the host"),
            ));
        }
        Some(IPPROTO_TCP) => (IPPROTO_TCP, "tcp"),
        Some(IPPROTO_UDP) => (IPPROTO_UDP, "udp"),
        Some(_) => {
            return Ok(Stage::new(
                StageName::Strict,
                Say::Passes,
                format!("{engaged}; applies to TCP and UDP only"),
            ));
        }
    };
    // A flow of the host passes first, as in the program.
    let flow = match (packet.dst, packet.dport, packet.sport) {
        (Some(dst), Some(dport), sport) if proto == IPPROTO_UDP || sport.is_some() => {
            let src = (packet.source, sport.unwrap_or(0));
            Some(dp.flow_known(cfg, src, (dst, dport), proto)?)
        }
        _ => None,
    };
    if flow == Some(true) {
        return Ok(Stage::new(
            StageName::Strict,
            Say::PassesAs(Reason::Flow),
            format!("{engaged}: a flow of the host (it started or answered it)"),
        ));
    }
    let flow_note = match flow {
        Some(_) => "no flow of the host",
        None => "a flow of the host would let it pass (give --dst and the ports to check)",
    };
    if proto == IPPROTO_TCP && !packet.syn {
        return Ok(Stage::new(
            StageName::Strict,
            Say::Depends(vec!["a connection of the host"], Some(Reason::NoFlow)),
            format!(
                "{engaged}: a TCP segment passes only in a flow or connection of the host, or with a valid SYN cookie"
            ),
        ));
    }
    let Some(port) = packet.dport else {
        return Ok(Stage::new(
            StageName::Strict,
            Say::Depends(vec!["--dport"], Some(Reason::NoService)),
            format!("{engaged}: {name} passes only to a served port; {flow_note}"),
        ));
    };
    let Some(slot) = dp.service_slot(v6, proto, port, packet.dst)? else {
        let bound = dp.service_prefixes(v6, proto, port)?;
        let on: Vec<String> = bound.iter().map(|n| n.to_string()).collect();
        return Ok(match packet.dst {
            None if !bound.is_empty() => Stage::new(
                StageName::Strict,
                Say::Depends(vec!["--dst"], Some(Reason::NoService)),
                format!(
                    "{engaged}: {name}/{port} is served on {} only",
                    on.join(", ")
                ),
            ),
            None => Stage::new(
                StageName::Strict,
                Say::Objects(Reason::NoService),
                format!("{engaged}: no service {name}/{port}; {flow_note}"),
            ),
            Some(dst) => Stage::new(
                StageName::Strict,
                Say::Objects(Reason::NoService),
                format!("{engaged}: no service {name}/{port} on {dst}; {flow_note}"),
            ),
        });
    };
    // A flood signature of this service drops an unknown source's packet before its
    // cookie or the budget (a familiar source passes before it).
    let familiar = cfg.flags & flags::FAMILIAR != 0
        && dp
            .familiar_ago(packet.source, cfg.familiar_ttl_ns)?
            .is_some();
    if !familiar && let Some(stage) = flood_signature(dp, packet, proto, port, &engaged)? {
        return Ok(stage);
    }
    if proto == IPPROTO_TCP {
        // In enforce the program answers only for a listening socket of the host (and a SYN
        // without IP options); else the later stages decide.
        let trigger_enforces =
            held.cpus > 0 && cfg.mode() == Mode::Monitor && cfg.flags & flags::AUTO_ENFORCE != 0;
        let say = if cfg.mode() == Mode::Enforce || trigger_enforces {
            Say::Depends(vec!["a listening socket"], Some(Reason::SynCookie))
        } else {
            Say::Objects(Reason::SynCookie)
        };
        return Ok(Stage::new(
            StageName::Strict,
            say,
            format!(
                "{engaged}: tcp/{port} served; the SYN is answered with a SYN cookie when a socket of the host listens"
            ),
        ));
    }
    if cfg.flags & flags::UDP_BUDGET == 0 && !held.udp {
        return Ok(Stage::new(
            StageName::Strict,
            Say::Passes,
            format!("{engaged}: udp/{port} served; {flow_note}"),
        ));
    }
    if cfg.flags & flags::FAMILIAR != 0
        && dp
            .familiar_ago(packet.source, cfg.familiar_ttl_ns)?
            .is_some()
    {
        return Ok(Stage::new(
            StageName::Strict,
            Say::PassesAs(Reason::Familiar),
            format!(
                "{engaged}: udp/{port} served; a familiar source (it sent within its limits while calm) passes before the unknown sources' budget"
            ),
        ));
    }
    let (refusing, cpus) = dp.budget_refusing(cfg, slot)?;
    let budget = match ceiling_pps(&cfg.unknown_budget, cpus) {
        Some(pps) => format!("unknown sources share its budget of {pps} pps"),
        None => "unknown sources share its budget".to_string(),
    };
    let head = format!("{engaged}: udp/{port} served, {flow_note}; {budget}");
    Ok(if refusing == cpus {
        Stage::new(
            StageName::Strict,
            Say::Objects(Reason::UnknownBudget),
            format!("{head}, spent on every CPU"),
        )
    } else if refusing > 0 {
        Stage::new(
            StageName::Strict,
            Say::Depends(vec!["the receiving CPU"], Some(Reason::UnknownBudget)),
            format!("{head}, spent on {refusing} of {cpus} CPUs"),
        )
    } else {
        Stage::new(
            StageName::Strict,
            Say::Passes,
            format!("{head}, room on every CPU"),
        )
    })
}

/// The say of the flood signatures in force for `proto`/`port`: the first whose fields the
/// packet is known to match objects; one that looks at fields explain is not given (length,
/// TTL, payload) drops the packets that match it.
fn flood_signature(
    dp: &Dataplane,
    packet: &ExplainPacket,
    proto: u8,
    port: u16,
    engaged: &str,
) -> Result<Option<Stage>> {
    use filter_common::signature::field;
    for sig in dp.signatures()? {
        let f = &sig.facts;
        if f.proto != proto || (sig.fields & field::DST_PORT != 0 && f.dst_port != port) {
            continue;
        }
        let mut needs = Vec::new();
        if sig.fields & field::SRC_PORT != 0 {
            match packet.sport {
                Some(p) if p != f.src_port => continue,
                Some(_) => {}
                None => needs.push("--sport"),
            }
        }
        if sig.fields & !(field::DST_PORT | field::SRC_PORT) != 0 {
            needs.push("its headers");
        }
        let text = crate::signatures::Text(sig);
        let head = format!("{engaged}: flood signature #{} ({text})", sig.id);
        return Ok(Some(if needs.is_empty() {
            Stage::new(
                StageName::Strict,
                Say::Objects(Reason::FloodSignature),
                format!("{head} drops it"),
            )
        } else {
            Stage::new(
                StageName::Strict,
                Say::Depends(needs, Some(Reason::FloodSignature)),
                format!("{head} drops its packets that match"),
            )
        }));
    }
    Ok(None)
}
