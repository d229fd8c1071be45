//! The response to the detection engine: its decisions turned into writes (mode, limits,
//! blocks), each logged as one line and counted.

use std::{net::IpAddr, time::Duration};

use filter_common::abi::Mode;
use ipnet::IpNet;
use tracing::{error, info, warn};

use super::{
    Controller,
    lists::{OperatorBlock, Setter},
};
use crate::{dataplane::expiry_after, engine::Decision};

impl Controller {
    /// Feeds the last interval's per-class rates to the engine and applies what it decides.
    pub(super) fn detect(&mut self, elapsed: Duration) {
        let Some(rates) = self.telemetry.class_rates() else {
            return;
        };
        for decision in self.engine.observe(elapsed, rates, self.mode.effective()) {
            self.apply(decision);
        }
        if let Some(unstopped) = self.telemetry.unstopped_rates() {
            self.engine.observe_unstopped(unstopped);
        }
    }

    /// Applies one decision of the engine, logs it as one line and counts it.
    pub(super) fn apply(&mut self, decision: Decision) {
        *self.decisions.entry(decision.kind()).or_default() += 1;
        self.telemetry.count_decision(decision.kind());
        match decision {
            Decision::AttackStarted {
                class,
                pps,
                baseline_pps,
            } => {
                warn!(class = class.name(), pps, baseline_pps, "attack started");
                self.rejudge_calm_offences(class);
            }
            Decision::AttackEnded { class } => info!(class = class.name(), "attack over"),
            Decision::ScaleLimits { class, factor } => {
                let before = self.limit_scale[class];
                self.limit_scale[class] = factor;
                match self.write_config() {
                    Ok(()) => info!(
                        class = class.name(),
                        factor, "detection scaled the per-source limits"
                    ),
                    Err(e) => {
                        self.limit_scale[class] = before;
                        error!("detection could not scale the limits: {e:#}")
                    }
                }
            }
            Decision::SwitchMode { to } => {
                let from = self.mode.effective();
                let before = self.mode.detection_holds;
                self.mode.detection_holds = to == Mode::Enforce;
                match self.write_config() {
                    Ok(()) => {
                        info!(
                            from = from.name(),
                            to = self.mode.effective().name(),
                            "detection switched the mode"
                        );
                        self.save_state_soon();
                    }
                    Err(e) => {
                        self.mode.detection_holds = before;
                        error!("detection could not switch the mode: {e:#}")
                    }
                }
            }
            Decision::Block {
                source,
                ttl,
                offences,
            } => self.block_offender(source, ttl, offences),
        }
    }

    fn block_offender(&mut self, source: IpAddr, ttl: Duration, offences: u32) {
        let sources = &self.settings.filter.sources;
        let prefix = match source {
            IpAddr::V4(_) => sources.ipv4_prefix,
            IpAddr::V6(_) => sources.ipv6_prefix,
        };
        let Ok(net) = IpNet::new(source, prefix).map(|n| n.trunc()) else {
            return;
        };
        if self.lists.block(&net).is_some() {
            return;
        }
        let expires_ns = match expiry_after(Some(ttl)) {
            Ok(e) => e,
            Err(e) => return error!(cidr = %net, "detection could not block: {e:#}"),
        };
        let entry = super::lists::Block {
            config: false,
            operator: Some(OperatorBlock {
                by: Setter::Detection,
                reason: Some(format!("detection: {offences} offence(s)")),
                expires_ns,
            }),
        };
        if let Err(e) = self.change_blocks(vec![(net, entry)]) {
            error!(cidr = %net, "detection could not block: {e:#}");
            return;
        }
        info!(cidr = %net, ttl_secs = ttl.as_secs(), offences, "detection blocked an offender");
        self.save_state_soon();
        if let Some(u) = &mut self.bgp {
            self.sharing.share_block(u, net, ttl, &self.lists);
        }
    }
}
