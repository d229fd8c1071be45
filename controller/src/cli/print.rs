//! The human-readable form of each view: one table or block of lines per command.

use std::io::{Result, Write};

use filter_common::abi::Class;

use crate::api::views::{
    BlockView, CounterView, LimitsView, Outcome, Prefix, StatusView, TalkerView,
};

pub trait Print {
    fn print(&self, out: &mut dyn Write) -> Result<()>;
}

impl Print for Vec<Prefix> {
    fn print(&self, out: &mut dyn Write) -> Result<()> {
        for Prefix(net) in self {
            writeln!(out, "{net}")?;
        }
        Ok(())
    }
}

impl Print for Vec<BlockView> {
    fn print(&self, out: &mut dyn Write) -> Result<()> {
        writeln!(out, "{:<43} {:>10}  REASON", "CIDR", "TTL")?;
        for b in self {
            let ttl = b.ttl_secs.map_or("-".into(), |s| format!("{s}s"));
            let reason = b.reason.as_deref().unwrap_or("-");
            writeln!(out, "{:<43} {:>10}  {reason}", b.cidr.0.to_string(), ttl)?;
        }
        Ok(())
    }
}

impl Print for Vec<CounterView> {
    fn print(&self, out: &mut dyn Write) -> Result<()> {
        writeln!(
            out,
            "{:<11} {:<20} {:>14} {:>16}",
            "ACTION", "REASON", "PACKETS", "BYTES"
        )?;
        for c in self {
            writeln!(
                out,
                "{:<11} {:<20} {:>14} {:>16}",
                c.action, c.reason, c.packets, c.bytes
            )?;
        }
        Ok(())
    }
}

impl Print for Vec<TalkerView> {
    fn print(&self, out: &mut dyn Write) -> Result<()> {
        writeln!(
            out,
            "{:<40} {:<10} {:>12} {:>14} {:>8}",
            "SOURCE", "CLASS", "RATE", "BANDWIDTH", "DROPPED"
        )?;
        for t in self {
            writeln!(
                out,
                "{:<40} {:<10} {:>12} {:>14} {:>7}%",
                t.source.to_string(),
                t.class,
                format!("{} pps", t.pps),
                format!("{:.1} Mbit/s", t.bits_per_sec as f64 / 1e6),
                t.dropped_pct
            )?;
        }
        Ok(())
    }
}

impl Print for LimitsView {
    fn print(&self, out: &mut dyn Write) -> Result<()> {
        let rate = |n: u64, unit: &str, scale: f64| {
            if n == 0 {
                "-".to_string()
            } else if scale == 1.0 {
                format!("{n} {unit}")
            } else {
                format!("{:.1} {unit}", n as f64 / scale)
            }
        };
        for (title, table) in [
            ("per source", &self.per_source),
            ("aggregate (all sources)", &self.aggregate),
        ] {
            writeln!(out, "{title}")?;
            writeln!(
                out,
                "  {:<10} {:>14} {:>10} {:>14} {:>12}",
                "CLASS", "RATE", "BURST", "BANDWIDTH", "BURST"
            )?;
            for class in Class::ALL {
                let r = table.get(class.name()).copied().unwrap_or_default();
                let burst = if r.pps == 0 {
                    "-".into()
                } else {
                    format!("{} pkt", r.burst)
                };
                let burst_bytes = if r.bps == 0 {
                    "-".into()
                } else {
                    format!("{} B", r.burst_bytes)
                };
                writeln!(
                    out,
                    "  {:<10} {:>14} {:>10} {:>14} {:>12}",
                    class.name(),
                    rate(r.pps, "pps", 1.0),
                    burst,
                    rate(r.bps, "Mbit/s", 1e6),
                    burst_bytes,
                )?;
            }
        }
        Ok(())
    }
}

impl Print for Vec<crate::services::ServiceView> {
    fn print(&self, out: &mut dyn Write) -> Result<()> {
        writeln!(
            out,
            "{:<6} {:>6}  {:<40} ORIGIN",
            "PROTO", "PORT", "DESTINATION"
        )?;
        for s in self {
            let origin = match s.origin {
                crate::services::Origin::Config => "config",
                crate::services::Origin::Socket => "socket",
            };
            writeln!(out, "{:<6} {:>6}  {:<40} {origin}", s.proto, s.port, s.dst)?;
        }
        Ok(())
    }
}

impl Print for StatusView {
    fn print(&self, out: &mut dyn Write) -> Result<()> {
        let mode = if self.mode_set_by == "detection" {
            format!("{} (detection, while the attack lasts)", self.mode.name())
        } else {
            self.mode.name().to_string()
        };
        writeln!(out, "mode        {mode}")?;
        for i in &self.interfaces {
            writeln!(out, "interface   {} ({})", i.name, i.attach)?;
        }
        writeln!(out, "uptime      {}s", self.uptime_secs)?;
        writeln!(
            out,
            "lists       {} blocked, {} allowlisted",
            self.blocklist_entries, self.allowlist_entries
        )?;
        writeln!(
            out,
            "packets     {} seen, {} dropped",
            self.packets, self.dropped
        )?;
        let r = &self.rates;
        writeln!(
            out,
            "rate        {} pps ({:.1} Mbit/s) passed, {} pps ({:.1} Mbit/s) dropped",
            r.pass_pps,
            r.pass_bps as f64 / 1e6,
            r.drop_pps,
            r.drop_bps as f64 / 1e6
        )?;
        let attacked: Vec<String> = self
            .attack
            .iter()
            .filter(|(_, s)| *s != "normal")
            .map(|(c, s)| format!("{c} {s}"))
            .collect();
        let attacked = if attacked.is_empty() {
            "none".to_string()
        } else {
            attacked.join(", ")
        };
        writeln!(out, "attack      {attacked}")?;
        let decisions: Vec<String> = self
            .decisions
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        if !decisions.is_empty() {
            writeln!(out, "detection   {}", decisions.join(", "))?;
        }
        let st = &self.strict;
        let udp_attacked = self.attack.get("udp").is_some_and(|s| s != "normal");
        let engaged = match (st.engaged, st.udp_budget) {
            (false, _) => "not engaged",
            (true, false) if udp_attacked => {
                "engaged, UDP flood has faces: the per-source limiter holds it"
            }
            (true, false) => "engaged",
            (true, true) => "engaged, UDP budget for unknown sources: the flood is spread",
        };
        let left_out = if st.services_left_out > 0 {
            format!(", {} left out: the table is full", st.services_left_out)
        } else {
            String::new()
        };
        writeln!(
            out,
            "strict      {} ({engaged}), {} services{left_out}",
            st.mode, st.services
        )?;
        if !st.triggered.is_empty() {
            writeln!(
                out,
                "  engaged in the program by a spread flood of {}",
                st.triggered.join(", ")
            )?;
        }
        for sig in &st.signatures {
            writeln!(out, "  flood signature {}", signature_line(sig))?;
        }
        for k in &st.kernel {
            match &k.was {
                Some(was) => writeln!(
                    out,
                    "  {} = {} (was {was}, put back on exit)",
                    k.name, k.value
                )?,
                None => writeln!(out, "  {} = {}", k.name, k.value)?,
            }
        }
        let so = &self.sources;
        writeln!(
            out,
            "sources     gate {:.1} ms x {}{}: tracked above {} pps per CPU (one CPU at {} pps), {} left untracked by the budget",
            so.gate_window_ms,
            so.gate_threshold,
            if so.narrowed { " (narrowed)" } else { "" },
            so.tracked_above_pps,
            so.cpu_pps,
            so.refused
        )?;
        for c in &self.top_reasons {
            writeln!(out, "  {:<10} {:<20} {:>14}", c.action, c.reason, c.packets)?;
        }
        for n in &self.neighbors {
            let ends = n
                .ends_in_secs
                .map_or(String::new(), |(lo, hi)| format!(", ending in {lo}-{hi} s"));
            let role = if n.role.is_empty() {
                "neighbour"
            } else {
                &n.role
            };
            writeln!(
                out,
                "bgp         {} ({role}): Levee sends it {} rules; it sent {}, {} enforced{ends}",
                n.address, n.sent, n.received, n.enforced
            )?;
        }
        Ok(())
    }
}

impl Print for crate::escalation::bgp::EscalationsView {
    fn print(&self, out: &mut dyn Write) -> Result<()> {
        writeln!(out, "escalation {}, through {}", self.mode, self.speaker)?;
        writeln!(
            out,
            "{:>4} {:<10} {:<8} {:>8}  {:<9} RULE",
            "ID", "BY", "TO", "TTL", "IN RIB"
        )?;
        if let Some(e) = &self.rib_error {
            writeln!(out, "{e}: the rules as Levee holds them")?;
        }
        for r in &self.rules {
            let in_rib = match (&r.in_rib, &self.rib_error) {
                (_, Some(_)) => "UNKNOWN",
                (Some(_), None) => "yes",
                (None, None) => "MISSING",
            };
            let pending = match (r.announce_pending, r.withdraw_pending) {
                (_, true) => " (withdraw pending)",
                (true, false) => " (announce pending)",
                _ => "",
            };
            writeln!(
                out,
                "{:>4} {:<10} {:<8} {:>7}s  {:<9} {}{pending}",
                r.id,
                r.by.name(),
                r.to.name(),
                r.ttl_left_secs,
                in_rib,
                r.rule
            )?;
        }
        for s in &self.stray {
            writeln!(
                out,
                "stray path of Levee's (withdrawn at the next check): {s}"
            )?;
        }
        Ok(())
    }
}

impl Print for Vec<crate::escalation::bgp::ReceivedView> {
    fn print(&self, out: &mut dyn Write) -> Result<()> {
        writeln!(
            out,
            "{:<9} {:<16} {:>8}  RULE (as gobgpd prints it): WHAT LEVEE DOES",
            "STATE", "FROM", "TTL"
        )?;
        for r in self {
            let ttl = r
                .ttl_left_secs
                .map_or_else(|| "-".to_string(), |t| format!("{t}s"));
            writeln!(
                out,
                "{:<9} {:<16} {ttl:>8}  {}: {}",
                r.state, r.neighbor, r.rule, r.detail
            )?;
        }
        Ok(())
    }
}

impl Print for crate::api::views::ExplainView {
    fn print(&self, out: &mut dyn Write) -> Result<()> {
        let mut packet = self.source.to_string();
        if let Some(p) = self.proto {
            let name = match p {
                6 => "tcp".to_string(),
                17 => "udp".to_string(),
                1 => "icmp".to_string(),
                58 => "icmpv6".to_string(),
                n => format!("protocol {n}"),
            };
            packet.push_str(&format!(" {name}"));
        }
        if self.syn {
            packet.push_str(" SYN");
        }
        if let Some(p) = self.sport {
            packet.push_str(&format!(" from port {p}"));
        }
        match (self.dst, self.dport) {
            (Some(d), Some(p)) => packet.push_str(&format!(" to {d} port {p}")),
            (Some(d), None) => packet.push_str(&format!(" to {d}")),
            (None, Some(p)) => packet.push_str(&format!(" to port {p}")),
            (None, None) => {}
        }
        match &self.class {
            Some(c) => writeln!(out, "{packet} (class {c})")?,
            None => writeln!(out, "{packet} (class unknown: no --proto)")?,
        }
        let source = match (self.verification.as_str(), self.verified_secs_ago) {
            ("live", _) => "live (the host is sending to it on a connection now): detection \
                 never blocklists it, its offences stay penalties in their class"
                .to_string(),
            ("verified", Some(ago)) => format!(
                "verified (the host held a TCP connection with it {ago} s ago): its offences \
                 may get it blocklisted"
            ),
            ("unverified", _) => "unverified (no TCP connection with the host): its offences \
                 stay penalties in their class, a SYN penalty is answered with cookies"
                .to_string(),
            (other, _) => other.to_string(),
        };
        writeln!(out, "source: {source}")?;
        if let Some(ago) = self.familiar_secs_ago {
            writeln!(
                out,
                "familiar: it sent UDP within its limits while calm {ago} s ago; during a \
                 spread UDP flood it passes before the unknown sources' budget"
            )?;
        }
        for i in &self.interfaces {
            let undecided = if i.unless.is_empty() {
                String::new()
            } else {
                format!("; unless these object first: {}", i.unless.join(", "))
            };
            writeln!(
                out,
                "{}: {} ({}){undecided}",
                i.interface,
                i.action.name(),
                i.reason.name()
            )?;
            for s in &i.stages {
                let say = match s.outcome {
                    Outcome::Decides => format!("{}  <- decides", s.say),
                    Outcome::NotReached => format!("(not reached) {}", s.say),
                    Outcome::Depends => {
                        format!("(depends on {}) {}", s.depends_on.join(", "), s.say)
                    }
                    Outcome::Passes => s.say.clone(),
                };
                writeln!(out, "  {:<11} {say}", s.stage.name())?;
            }
        }
        Ok(())
    }
}

/// One flood signature as `levee status` and `levee signatures` print it.
pub fn signature_line(s: &crate::signatures::SignatureView) -> String {
    let life = match s.ttl_secs {
        Some(t) => format!("{t} s left"),
        None => "pinned".to_string(),
    };
    format!(
        "#{} {}: {} dropped, {life}; found {} s ago covering {:.1}% of the attack, {:.1}% of the calm",
        s.id,
        s.signature,
        s.drops,
        s.found_secs_ago,
        s.attack_cover * 100.0,
        s.calm_cover * 100.0
    )
}
