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
    engine::AttackState,
    services::{
        self, Origin, discover,
        kernel::{HostTcp, KernelSettings},
    },
};

/// What strict is doing now.
#[derive(Debug, Default)]
pub(crate) struct StrictState {
    /// Strict is engaged: the program drops what no service or flow accounts for.
    pub engaged: bool,
    /// Unknown UDP sources share their service's budget (engaged, UDP under attack).
    pub udp_budget: bool,
    /// The services the program holds, with their origin.
    pub services: Vec<(ServiceRule, Origin)>,
    /// Kernel settings changed for the SYN cookies, put back on exit.
    pub kernel: Option<KernelSettings>,
    /// MSS (IPv4, IPv6) and window scale the SYN-ACK offers.
    pub synack: (u16, u16, u8),
    /// What the SYN-ACK may agree to (SACK, window scale, ECN), as the kernel takes it.
    pub host_tcp: HostTcp,
    /// The last discovery failed (logged once until it works again).
    discovery_failing: bool,
}

impl StrictState {
    /// Reads what the SYN-ACK must offer and lists the services. Nothing is written to a
    /// program or to the kernel yet ([`StrictState::set_kernel`] comes once the start holds).
    pub fn prepare(settings: &StrictSettings, first_iface: &str) -> Result<StrictState> {
        let mut s = StrictState::default();
        if settings.mode == StrictMode::Off {
            return Ok(s);
        }
        let (mss4, mss6) = services::kernel::mss_for(first_iface);
        s.synack = (mss4, mss6, services::kernel::kernel_wscale());
        s.host_tcp = HostTcp::read();
        s.services = discovered(settings)?;
        Ok(s)
    }

    /// Sets the kernel settings the SYN cookies need (strict not off).
    pub fn set_kernel(&mut self, settings: &StrictSettings) -> Result<()> {
        if settings.mode != StrictMode::Off {
            self.kernel = Some(KernelSettings::apply()?);
        }
        Ok(())
    }

    pub fn rules(&self) -> Vec<ServiceRule> {
        self.services.iter().map(|(r, _)| *r).collect()
    }
}

/// The services of the settings plus the host's sockets (if `discover`).
fn discovered(settings: &StrictSettings) -> Result<Vec<(ServiceRule, Origin)>> {
    let sockets = if settings.discover {
        discover::served_sockets().context("cannot learn the host's services")?
    } else {
        Vec::new()
    };
    Ok(services::merge(&settings.services, &sockets))
}

impl Controller {
    /// Writes strict's part of the program's configuration.
    pub(crate) fn strict_config(&self, c: &mut Config) {
        let s = &self.settings.strict;
        c.set_flag(flags::TRACK_FLOWS, s.mode != StrictMode::Off);
        c.set_flag(flags::STRICT, self.strict.engaged);
        c.set_flag(flags::UDP_BUDGET, self.strict.udp_budget);
        let host = self.strict.host_tcp;
        c.set_flag(flags::SYNACK_ECN, host.ecn);
        c.set_flag(flags::SYNACK_SACK, host.sack);
        c.set_flag(flags::SYNACK_WSCALE, host.wscale);
        c.flow_timeout_ns = s.flow_timeout.as_nanos() as u64;
        c.unknown_budget = s.unknown_budget.encode_per_cpu(self.cpus);
        let (mss4, mss6, wscale) = self.strict.synack;
        if mss4 != 0 {
            c.synack_mss_v4 = mss4;
            c.synack_mss_v6 = mss6;
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
        let udp_budget = engaged && self.engine.state(Class::Udp) != AttackState::Normal;
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
            self.follow_host_tcp();
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

    /// Re-reads what the host's TCP takes (SACK, window scale, ECN) and, if an operator
    /// changed it, rewrites what the SYN-ACK offers: a cookie that encodes an option the
    /// kernel no longer takes makes it reset the client.
    fn follow_host_tcp(&mut self) {
        let now = HostTcp::read();
        let before = self.strict.host_tcp;
        if now == before {
            return;
        }
        self.strict.host_tcp = now;
        match self.write_config() {
            Ok(()) => warn!(
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
        let now = discovered(&self.settings.strict)?;
        if self.strict.discovery_failing {
            warn!("services: discovery works again");
            self.strict.discovery_failing = false;
        }
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
