//! The paths Levee announces, built for gobgpd's API: an RTBH route (RFC 7999) and a FlowSpec
//! rule (RFC 8955/8956), each marked as Levee's rule.

use std::net::IpAddr;

use anyhow::Result;

use super::{Gobgp, any, api, family, unicast, unspecified};
use crate::{
    config::escalation::Community,
    escalation::{FlowAction, FlowRule, Rule},
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
            self.tag(id),
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
    pub async fn add_flowspec(&mut self, id: u32, rule: &FlowRule) -> Result<Vec<u8>> {
        let v6 = rule.dst.is_ipv6();
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
        let mut rules = vec![any(
            "FlowSpecIPPrefix",
            &api::FlowSpecIpPrefix {
                r#type: 1,
                prefix_len: if v6 { 128 } else { 32 },
                prefix: rule.dst.to_string(),
                offset: 0,
            },
        )];
        if let Some(p) = rule.proto {
            rules.push(eq(3, u64::from(p)));
        }
        if let Some(p) = rule.dst_port {
            rules.push(eq(5, u64::from(p)));
        }
        if let Some(p) = rule.src_port {
            rules.push(eq(6, u64::from(p)));
        }
        if let Some((lo, hi)) = rule.len {
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
        let rate = match rule.action {
            FlowAction::Discard => 0.0,
            FlowAction::RateBytes(n) => n as f32,
        };
        let pattrs = vec![
            any("OriginAttribute", &api::OriginAttribute { origin: 0 }),
            self.tag(id),
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
        self.announce(path, || {
            format!("the FlowSpec rule {}", Rule::FlowSpec(rule.clone()))
        })
        .await
    }
}
