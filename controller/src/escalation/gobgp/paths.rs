//! The paths Levee announces, built for gobgpd's API: an RTBH route (RFC 7999) and a FlowSpec
//! rule (RFC 8955/8956), each marked as Levee's rule.

use std::net::IpAddr;

use anyhow::Result;
use ipnet::IpNet;

use super::{Gobgp, any, api, family, unicast, unspecified};
use crate::{
    config::escalation::Community,
    escalation::{FlowAction, FlowRule, Marks, Rule},
};
use api::Family;

impl Gobgp {
    /// Announces a blackhole route for one address (a /32 or /128) with `communities` and
    /// NO_EXPORT, marked as Levee's rule `id`; returns gobgpd's id of the path. The next hop
    /// is left to gobgpd (its own address on each session), as the upstream's blackhole
    /// policy matches the community, not the next hop.
    pub async fn add_rtbh(
        &mut self,
        id: u32,
        marks: Marks,
        dst: IpAddr,
        communities: &[Community],
    ) -> Result<Vec<u8>> {
        let v6 = dst.is_ipv6();
        let nlri = any(
            "IPAddressPrefix",
            &api::IpAddressPrefix {
                prefix_len: if v6 { 128 } else { 32 },
                prefix: dst.to_string(),
            },
        );
        let mut all: Vec<u32> = communities.iter().map(|c| c.value()).collect();
        all.push(Community::NO_EXPORT.value());
        all.sort_unstable();
        all.dedup();
        let mut pattrs = vec![
            any("OriginAttribute", &api::OriginAttribute { origin: 0 }),
            any(
                "CommunitiesAttribute",
                &api::CommunitiesAttribute { communities: all },
            ),
            self.tag(id, marks),
        ];
        let next_hop = unspecified(v6);
        if v6 {
            pattrs.push(any(
                "MpReachNLRIAttribute",
                &api::MpReachNlriAttribute {
                    family: Some(unicast(true)),
                    next_hops: vec![next_hop.to_string()],
                    nlris: vec![nlri.clone()],
                },
            ));
        } else {
            pattrs.push(any(
                "NextHopAttribute",
                &api::NextHopAttribute {
                    next_hop: next_hop.to_string(),
                },
            ));
        }
        let path = api::Path {
            nlri: Some(nlri),
            pattrs,
            family: Some(unicast(v6)),
            ..Default::default()
        };
        self.announce(path, || format!("the blackhole route for {dst}"))
            .await
    }

    /// Announces a FlowSpec rule (RFC 8955/8956): the destination host, the protocol, ports
    /// and length range given, and traffic-rate 0 (discard) or N bytes a second. Returns
    /// gobgpd's id of the path. The rule must have passed [`super::policy::check`].
    pub async fn add_flowspec(
        &mut self,
        id: u32,
        marks: Marks,
        rule: &FlowRule,
    ) -> Result<Vec<u8>> {
        let flow = Flow {
            dst: IpNet::from(rule.dst),
            src: None,
            proto: rule.proto,
            src_port: rule.src_port,
            dst_port: rule.dst_port,
            len: rule.len,
            action: rule.action,
        };
        self.add_flow(id, marks, &flow, &Rule::FlowSpec(rule.clone()))
            .await
    }

    /// Announces a source block: a discard of everything from `src` toward `dst`.
    pub async fn add_source_block(
        &mut self,
        id: u32,
        marks: Marks,
        src: IpNet,
        dst: IpNet,
    ) -> Result<Vec<u8>> {
        let flow = Flow {
            dst,
            src: Some(src),
            proto: None,
            src_port: None,
            dst_port: None,
            len: None,
            action: FlowAction::Discard,
        };
        self.add_flow(id, marks, &flow, &Rule::SourceBlock { src, dst })
            .await
    }

    async fn add_flow(
        &mut self,
        id: u32,
        marks: Marks,
        flow: &Flow,
        rule: &Rule,
    ) -> Result<Vec<u8>> {
        let v6 = flow.dst.addr().is_ipv6();
        let family = Family {
            afi: if v6 {
                family::Afi::Ip6
            } else {
                family::Afi::Ip
            } as i32,
            safi: family::Safi::FlowSpecUnicast as i32,
        };
        // Numeric operators: eq 0x01, gt 0x02, lt 0x04, and 0x40 (gobgpd sets the value's
        // length and the end-of-list bit).
        let eq = |t: u32, v: u64| {
            any(
                "FlowSpecComponent",
                &api::FlowSpecComponent {
                    r#type: t,
                    items: vec![api::FlowSpecComponentItem { op: 0x01, value: v }],
                },
            )
        };
        let prefix = |t: u32, net: &IpNet| {
            any(
                "FlowSpecIPPrefix",
                &api::FlowSpecIpPrefix {
                    r#type: t,
                    prefix_len: u32::from(net.prefix_len()),
                    prefix: net.network().to_string(),
                    offset: 0,
                },
            )
        };
        let mut rules = vec![prefix(1, &flow.dst)];
        if let Some(src) = &flow.src {
            rules.push(prefix(2, src));
        }
        if let Some(p) = flow.proto {
            rules.push(eq(3, u64::from(p)));
        }
        if let Some(p) = flow.dst_port {
            rules.push(eq(5, u64::from(p)));
        }
        if let Some(p) = flow.src_port {
            rules.push(eq(6, u64::from(p)));
        }
        if let Some((lo, hi)) = flow.len {
            rules.push(any(
                "FlowSpecComponent",
                &api::FlowSpecComponent {
                    r#type: 10,
                    items: vec![
                        api::FlowSpecComponentItem {
                            op: 0x03,
                            value: u64::from(lo),
                        },
                        api::FlowSpecComponentItem {
                            op: 0x45,
                            value: u64::from(hi),
                        },
                    ],
                },
            ));
        }
        let nlri = any("FlowSpecNLRI", &api::FlowSpecNlri { rules });
        let rate = match flow.action {
            FlowAction::Discard => 0.0,
            FlowAction::RateBytes(n) => n as f32,
        };
        let pattrs = vec![
            any("OriginAttribute", &api::OriginAttribute { origin: 0 }),
            self.tag(id, marks),
            any(
                "MpReachNLRIAttribute",
                &api::MpReachNlriAttribute {
                    family: Some(family),
                    next_hops: vec![unspecified(v6).to_string()],
                    nlris: vec![nlri.clone()],
                },
            ),
            any(
                "ExtendedCommunitiesAttribute",
                &api::ExtendedCommunitiesAttribute {
                    communities: vec![any(
                        "TrafficRateExtended",
                        &api::TrafficRateExtended { asn: 0, rate },
                    )],
                },
            ),
        ];
        let path = api::Path {
            nlri: Some(nlri),
            pattrs,
            family: Some(family),
            ..Default::default()
        };
        self.announce(path, || format!("the FlowSpec rule {rule}"))
            .await
    }
}

/// A FlowSpec rule's components, as announced.
struct Flow {
    dst: IpNet,
    src: Option<IpNet>,
    proto: Option<u8>,
    src_port: Option<u16>,
    dst_port: Option<u16>,
    len: Option<(u16, u16)>,
    action: FlowAction,
}
