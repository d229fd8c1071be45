//! The static signatures' say (`filter_common::stage::signatures` decides).

use filter_common::stage::signatures;

use super::{reads::Reads, *};

pub(super) fn signatures(dp: &Dataplane, cfg: &Config, packet: &ExplainPacket) -> Result<Stage> {
    let f = cfg.flags;
    let amp = f & flags::SIG_AMP_PORTS != 0;
    let frag = if f & flags::SIG_FRAGMENTS != 0 {
        "; a whole datagram assumed (fragments: signature on)"
    } else {
        ""
    };
    let Some(pkt) = reads::facts(packet) else {
        return Ok(if amp {
            Stage::new(
                StageName::Signatures,
                Say::Depends(vec!["--proto", "--sport"], Some(Reason::AmpPort)),
                format!("drops UDP from an amplification port (no --proto given){frag}"),
            )
        } else {
            Stage::new(
                StageName::Signatures,
                Say::Passes,
                format!("none apply{frag}"),
            )
        });
    };
    let mut reads = Reads::new(dp, cfg, packet)?;
    let said = signatures::judge(f, &pkt, &mut reads);
    reads.finish()?;
    let port = packet.sport.unwrap_or(0);
    let source_port = format!("UDP source port {port} is an amplification port");
    let text = match (said, reads.amp, reads.flow) {
        (Some(Reason::AmpPort), None, _) => {
            format!("drops UDP from an amplification port (no --sport given){frag}")
        }
        (Some(Reason::AmpPort), _, Some(false)) => {
            format!("{source_port}, and answers no query this host sent")
        }
        // Floods are the common case: dropped, and the exception named.
        (Some(Reason::AmpPort), _, None) if f & flags::TRACK_FLOWS != 0 => format!(
            "{source_port} (unless it answers a query this host sent: give --dst and --dport to check)"
        ),
        (Some(Reason::AmpPort), _, None) => source_port,
        (Some(reason), _, _) => format!("{} signature", reason.name()),
        (None, Some(true), _) => {
            format!("{source_port}, but it answers a query this host sent (a flow)")
        }
        (None, None, Some(true)) => {
            "an amplification port or not, it answers a query this host sent (a flow)".to_string()
        }
        (None, Some(false), _) => {
            format!("UDP source port {port} is not an amplification port{frag}")
        }
        (None, None, _) if pkt.proto == IPPROTO_TCP && f & flags::SIG_TCP_FLAGS != 0 => {
            format!("legitimate TCP flags assumed{frag}")
        }
        (None, None, _) => format!("none apply{frag}"),
    };
    Ok(Stage::new(
        StageName::Signatures,
        Say::of(said, &reads.assumed),
        text,
    ))
}
