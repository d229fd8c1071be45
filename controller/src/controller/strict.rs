//! Strict mode in the controller: when it is engaged (`strict.mode`, the detection engine),
//! the services the program knows (configured, and discovered from the host's sockets every
//! tick), and the kernel settings its SYN cookies need.

use anyhow::{Context as _, Result};
use filter_common::abi::{Class, Config, flags};
use tracing::{error, info, warn};

use super::Controller;
use crate::{
    config::{StrictMode, StrictSettings},
    dataplane::ServiceRule,
    services::{
        self, Origin, discover,
        kernel::{Changed, HostTcp, KernelSettings},
    },
};

/// What strict is doing now.
#[derive(Debug, Default)]
pub(crate) struct StrictState {
    /// Strict is engaged: the program drops what no service or flow accounts for.
    pub engaged: bool,
    /// Unknown UDP sources share their service's budget (engaged, UDP under attack by a
    /// spread flood: one the per-source limiter does not hold).
    pub udp_budget: bool,
    /// The services the program holds, with their origin.
    pub services: Vec<(ServiceRule, Origin)>,
    /// Services the tables had no room for (their ports get `no_service`).
    pub left_out: usize,
    /// Strict engaged by the program itself (see `trigger`).
    pub trigger: super::trigger::Trigger,
    /// Kernel settings changed for the SYN cookies, put back on exit.
    pub kernel: Option<KernelSettings>,
    /// The window scale the SYN-ACK offers (read at start; strict not off). The MSS is the
    /// interface's own (`services::kernel::for_interface`).
    pub wscale: Option<u8>,
    /// What the SYN-ACK may agree to (SACK, window scale, ECN), as the kernel takes it.
    pub host_tcp: HostTcp,
    /// The last discovery failed (logged once until it works again).
    discovery_failing: bool,
}

impl StrictState {
    /// Reads what the SYN-ACK must offer and lists the services. Nothing is written to a
    /// program or to the kernel yet ([`StrictState::set_kernel`] comes once the start holds).
    pub fn prepare(settings: &StrictSettings) -> Result<StrictState> {
        let mut s = StrictState::default();
        if settings.mode == StrictMode::Off {
            return Ok(s);
        }
        s.wscale = Some(services::kernel::kernel_wscale());
        s.host_tcp = HostTcp::read();
        (s.services, s.left_out) = discovered(settings)?;
        if s.left_out > 0 {
            warn!(
                left_out = s.left_out,
                capacity = filter_common::abi::SERVICE_ENTRIES,
                "services table full: these services are not served (no_service)"
            );
        }
        Ok(s)
    }

    /// Sets the kernel settings the SYN cookies need (strict not off), taking over those an
    /// earlier run changed and never put back (`inherited`, from the state file).
    pub fn set_kernel(&mut self, settings: &StrictSettings, inherited: &[Changed]) -> Result<()> {
        if settings.mode != StrictMode::Off {
            self.kernel = Some(KernelSettings::apply(inherited)?);
        } else {
            KernelSettings::put_back(inherited);
        }
        Ok(())
    }

    pub fn rules(&self) -> Vec<ServiceRule> {
        self.services.iter().map(|(r, _)| *r).collect()
    }
}

/// The services of the settings plus the sockets of the allowed owners (if `discover`), as
/// many as the tables hold, and how many did not fit.
fn discovered(settings: &StrictSettings) -> Result<(Vec<(ServiceRule, Origin)>, usize)> {
    let mut sockets = if settings.discover {
        discover::served_sockets().context("cannot learn the host's services")?
    } else {
        Vec::new()
    };
    sockets.retain(|s| settings.service_owners.allows(s.uid));
    Ok(services::fit(services::merge(&settings.services, &sockets)))
}

impl Controller {
    /// Writes strict's part of the program's configuration.
    pub(crate) fn strict_config(&self, c: &mut Config) {
        let s = &self.settings.strict;
        c.set_flag(flags::TRACK_FLOWS, s.mode != StrictMode::Off);
        c.set_flag(flags::STRICT, self.strict.engaged);
        c.set_flag(flags::UDP_BUDGET, self.strict.udp_budget);
        let host = self.strict.host_tcp;
        c.set_flag(flags::SYNACK_TS, host.timestamps);
        c.set_flag(flags::SYNACK_ECN, host.ecn);
        c.set_flag(flags::SYNACK_SACK, host.sack);
        c.set_flag(flags::SYNACK_WSCALE, host.wscale);
        c.flow_timeout_ns = s.flow_timeout.as_nanos() as u64;
        c.set_flag(flags::FAMILIAR, s.mode != StrictMode::Off);
        c.familiar_ttl_ns = s.familiar_ttl.as_nanos() as u64;
        // Each CPU's share, with a burst of a thousand entries.
        c.familiar_new_cost_ns =
            1_000_000_000 * u64::from(self.cpus.max(1)) / s.familiar_max_new_per_sec;
        c.familiar_new_burst_ns = c.familiar_new_cost_ns * 1000;
        c.unknown_budget = s.unknown_budget.encode_per_cpu(self.cpus);
        if let Some(wscale) = self.strict.wscale {
            c.synack_wscale = wscale;
        }
    }

    /// Once a tick: engages or releases strict as the engine's states say, and brings the
    /// services up to date with the host's sockets.
    pub(super) fn update_strict(&mut self) {
        let mode = self.settings.strict.mode;
        let engaged = match mode {
            StrictMode::Off => false,
            StrictMode::Always => true,
            StrictMode::Auto => self.engine.under_attack(),
        };
        // A UDP flood with a few faces is the limiter's: its sources are penalised, and the
        // crowd of unknown sources keeps its door. Only a spread one needs the budget.
        let udp_budget = engaged && self.engine.spread(Class::Udp);
        if (engaged, udp_budget) != (self.strict.engaged, self.strict.udp_budget) {
            let before = (self.strict.engaged, self.strict.udp_budget);
            (self.strict.engaged, self.strict.udp_budget) = (engaged, udp_budget);
            match self.write_config() {
                Ok(()) if engaged != before.0 => info!(
                    engaged,
                    udp_budget,
                    "strict {}",
                    if engaged { "engaged" } else { "released" }
                ),
                Ok(()) => info!(udp_budget, "strict: UDP budget for unknown sources changed"),
                Err(e) => {
                    (self.strict.engaged, self.strict.udp_budget) = before;
                    self.telemetry.count_error();
                    error!("cannot switch strict: {e:#}");
                }
            }
        }
        if mode != StrictMode::Off {
            self.watch_kernel();
        }
        if mode != StrictMode::Off
            && let Err(e) = self.refresh_services()
        {
            self.telemetry.count_error();
            if !self.strict.discovery_failing {
                error!("services kept as they were: {e:#}");
            }
            self.strict.discovery_failing = true;
        }
    }

    /// Once a tick, the kernel settings strict depends on: those Levee owns are put back if
    /// someone changed them; those it follows (timestamps off, SACK, window scale, ECN)
    /// rewrite what the SYN-ACK offers, since a cookie that encodes an option the kernel no
    /// longer takes makes it reset the client. Every change is counted.
    fn watch_kernel(&mut self) {
        if let Some(k) = &mut self.strict.kernel {
            let (put_back, errors) = k.watch();
            for setting in &put_back {
                self.telemetry.count_kernel_change(setting, "put_back");
            }
            for e in errors {
                self.telemetry.count_error();
                error!("cannot keep a kernel setting strict needs: {e:#}");
            }
            if !put_back.is_empty() {
                self.save_state_soon();
            }
        }
        let now = HostTcp::read();
        let before = self.strict.host_tcp;
        if now == before {
            return;
        }
        for (setting, changed) in [
            (
                "net.ipv4.tcp_timestamps",
                now.timestamps != before.timestamps,
            ),
            ("net.ipv4.tcp_sack", now.sack != before.sack),
            ("net.ipv4.tcp_window_scaling", now.wscale != before.wscale),
            ("net.ipv4.tcp_ecn", now.ecn != before.ecn),
        ] {
            if changed {
                self.telemetry.count_kernel_change(setting, "followed");
            }
        }
        self.strict.host_tcp = now;
        match self.write_config() {
            Ok(()) => warn!(
                timestamps = now.timestamps,
                sack = now.sack,
                window_scaling = now.wscale,
                ecn = now.ecn,
                "kernel TCP settings changed: the SYN-ACK now offers what the kernel takes"
            ),
            Err(e) => {
                self.strict.host_tcp = before;
                self.telemetry.count_error();
                error!("cannot follow the kernel's TCP settings: {e:#}");
            }
        }
    }

    /// Rewrites the services if the host's sockets or the config changed them.
    pub(crate) fn refresh_services(&mut self) -> Result<()> {
        let (now, left_out) = discovered(&self.settings.strict)?;
        if self.strict.discovery_failing {
            warn!("services: discovery works again");
            self.strict.discovery_failing = false;
        }
        if left_out != self.strict.left_out {
            if left_out > 0 {
                warn!(
                    left_out,
                    capacity = filter_common::abi::SERVICE_ENTRIES,
                    "services table full: these services are not served (no_service)"
                );
            } else {
                info!("services table: every service fits again");
            }
            self.strict.left_out = left_out;
        }
        self.telemetry.set_services_left_out(left_out);
        if now == self.strict.services {
            return Ok(());
        }
        let before = self.strict.rules();
        let rules: Vec<ServiceRule> = now.iter().map(|(r, _)| *r).collect();
        self.fleet.set_services(&rules, &before)?;
        info!(
            services = rules.len(),
            was = before.len(),
            "services updated"
        );
        self.strict.services = now;
        Ok(())
    }
}
