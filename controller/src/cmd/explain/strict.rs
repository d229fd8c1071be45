//! Strict's say: services, flows, sockets and the budget of unknown sources
//! (`filter_common::stage::strict` decides).

use filter_common::stage::strict::{self as rules, Strict};

use super::{reads::Reads, *};

pub(super) fn strict(dp: &Dataplane, cfg: &Config, packet: &ExplainPacket) -> Result<Stage> {
    let mut reads = Reads::new(dp, cfg, packet)?;
    // The program's trigger may hold strict on some CPUs while the controller has not
    // engaged it (a spread flood's first second).
    let held = reads.held;
    let engaged = match (cfg.flags & flags::STRICT != 0, held.cpus) {
        (true, _) => "engaged".to_string(),
        (false, 0) => return Ok(Stage::new(StageName::Strict, Say::Passes, "not engaged")),
        (false, n) => format!(
            "engaged by the program's trigger on {n} of {} CPUs",
            held.of
        ),
    };
    let Some(pkt) = reads::facts(packet) else {
        return Ok(Stage::new(
            StageName::Strict,
            Say::Depends(vec!["--proto"], Some(Reason::NoService)),
            format!("{engaged}: TCP and UDP pass only to a service or in a flow of the host"),
        ));
    };
    let name = match pkt.proto {
        IPPROTO_TCP => "tcp",
        IPPROTO_UDP => "udp",
        _ => {
            return Ok(Stage::new(
                StageName::Strict,
                Say::Passes,
                format!("{engaged}; applies to TCP and UDP only"),
            ));
        }
    };
    let mut said = rules::judge(cfg.flags, &pkt, &mut reads);
    if said == Strict::Refuse(Reason::FloodSignature) {
        // The signature program's part: a flood signature of this service drops the
        // packet; if none matches, strict goes on as the signature program does.
        if let Some(stage) = flood_signature(dp, packet, pkt.proto, &engaged)? {
            return Ok(stage);
        }
        said = rules::no_signature(&pkt, &mut reads);
    }
    reads.finish()?;
    let flow_note = match (reads.flow, reads.flow_unknown) {
        (Some(_), _) => "no flow of the host",
        _ => "a flow of the host would let it pass (give --dst and the ports to check)",
    };
    let port = packet.dport.unwrap_or(0);
    let assumed = reads.assumed.clone();
    let (reason, text) = match said {
        Strict::Known(Reason::Flow) => {
            return Ok(Stage::new(
                StageName::Strict,
                Say::PassesAs(Reason::Flow),
                format!("{engaged}: a flow of the host (it started or answered it)"),
            ));
        }
        Strict::Known(reason) => {
            return Ok(Stage::new(
                StageName::Strict,
                Say::PassesAs(reason),
                format!(
                    "{engaged}: udp/{port} served; a familiar source (it sent within its limits while calm) passes before the unknown sources' budget"
                ),
            ));
        }
        Strict::Refuse(Reason::NoFlow) => (
            Some(Reason::NoFlow),
            format!(
                "{engaged}: a TCP segment passes only in a flow or connection of the host, or with a valid SYN cookie"
            ),
        ),
        Strict::Refuse(Reason::NoService) => {
            let text = if packet.dport.is_none() {
                format!("{engaged}: {name} passes only to a served port; {flow_note}")
            } else if !reads.served_on.is_empty() {
                let on: Vec<String> = reads.served_on.iter().map(|n| n.to_string()).collect();
                format!(
                    "{engaged}: {name}/{port} is served on {} only",
                    on.join(", ")
                )
            } else if let Some(dst) = packet.dst {
                format!("{engaged}: no service {name}/{port} on {dst}; {flow_note}")
            } else {
                format!("{engaged}: no service {name}/{port}; {flow_note}")
            };
            (Some(Reason::NoService), text)
        }
        Strict::Refuse(Reason::SynCookie) => (
            Some(Reason::SynCookie),
            format!(
                "{engaged}: tcp/{port} served; the SYN is answered with a SYN cookie when a socket of the host listens"
            ),
        ),
        Strict::Refuse(reason) => (Some(reason), format!("{engaged}: {}", reason.name())),
        Strict::Budget(slot) => return budget(dp, cfg, slot, &engaged, port, flow_note),
        Strict::Unknown => (
            None,
            format!("{engaged}: {name}/{port} served; {flow_note}"),
        ),
    };
    Ok(Stage::new(
        StageName::Strict,
        Say::of(reason, &assumed),
        text,
    ))
}

/// The say of the budget unknown sources share: the packet takes a token of it, on the CPU
/// it lands on.
fn budget(
    dp: &Dataplane,
    cfg: &Config,
    slot: u32,
    engaged: &str,
    port: u16,
    flow_note: &str,
) -> Result<Stage> {
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
    engaged: &str,
) -> Result<Option<Stage>> {
    use filter_common::signature::field;
    for sig in dp.signatures()? {
        let f = &sig.facts;
        if f.proto != proto {
            continue;
        }
        let mut needs = Vec::new();
        if sig.fields & field::DST_PORT != 0 {
            match packet.dport {
                Some(p) if p != f.dst_port => continue,
                Some(_) => {}
                None => needs.push("--dport"),
            }
        }
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
