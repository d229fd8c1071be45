//! Escalation upstream, against real BGP daemons in two namespaces: the gobgpd Levee starts
//! itself peers with bird2 (the upstream), and what the upstream's table shows is the test.

use levee::{
    config::{
        EscalationMode, EscalationSettings,
        escalation::{Community, Neighbor, Role},
    },
    escalation::{
        Audience, FlowAction, FlowRule, Marks,
        gobgp::{Gobgp, Managed},
    },
};
use levee_tests::{
    bgp::{ATTACKED, Bird, LEVEE_SIDE, UPSTREAM, scratch_dir},
    netns::Lab,
};

fn settings() -> EscalationSettings {
    EscalationSettings {
        mode: EscalationMode::On,
        asn: 64512,
        router_id: Some(LEVEE_SIDE.parse().unwrap()),
        neighbors: vec![Neighbor {
            role: Role::Upstream,
            address: UPSTREAM.parse().unwrap(),
            asn: 65000,
            password: None,
            max_prefixes: 1000,
        }],
        protected_prefixes: vec!["198.18.0.0/15".parse().unwrap()],
        ..EscalationSettings::default()
    }
}

/// An RTBH route reaches the upstream with BLACKHOLE and NO_EXPORT and is withdrawn there when
/// Levee deletes it; a FlowSpec rule reaches its flow4 table with each component and the
/// traffic-rate 0 action; both are gone there the moment Levee's gobgpd is killed.
#[test]
fn rtbh_and_flowspec_reach_the_upstream_and_leave_with_gobgpd() {
    let lab = Lab::new();
    let dir = scratch_dir("escalation");
    let bird = Bird::start(&lab.client, &dir);
    let prefix = format!("{ATTACKED}/32");
    lab.protected.run(|| {
        runtime().block_on(async {
            let gobgpd = Managed::start(&settings(), &dir.join("gobgpd"))
                .await
                .unwrap();
            // The config may hold session passwords, the API announces: root's alone.
            use std::os::unix::fs::PermissionsExt as _;
            let mode =
                |p: &str| std::fs::metadata(dir.join(p)).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode("gobgpd"), 0o700);
            assert_eq!(mode("gobgpd/gobgpd.toml"), 0o600);
            let mut api = Gobgp::connect(&gobgpd.api(), 64512).await.unwrap();
            let id = blackhole_attacked(&mut api).await;
            assert_eq!(api.list_unicast(false).await.unwrap(), vec![prefix.clone()]);
            let shown = bird.wait_route(&prefix, 60, |s| s.contains("(65535,666)"));
            eprintln!("the upstream shows:\n{shown}");
            assert!(
                shown.contains("(65535,666)") && shown.contains("(65535,65281)"),
                "the upstream holds the blackhole with NO_EXPORT: {shown}"
            );
            api.delete(&id).await.unwrap();
            let shown = bird.wait_route(&prefix, 20, |s| !s.contains(&prefix));
            assert!(
                !shown.contains(&prefix),
                "withdrawn at the upstream: {shown}"
            );

            blackhole_attacked(&mut api).await;
            let shown = bird.wait_route(&prefix, 20, |s| s.contains(&prefix));
            assert!(shown.contains(&prefix), "announced again: {shown}");

            // A FlowSpec rule for the flood's shape: NTP reflection to the attacked host.
            api.add_flowspec(
                2,
                Marks::for_time(Audience::Upstream, std::time::Duration::from_secs(600)),
                &FlowRule {
                    dst: ATTACKED.parse().unwrap(),
                    proto: Some(17),
                    src_port: Some(123),
                    dst_port: None,
                    len: Some((468, 1500)),
                    action: FlowAction::Discard,
                },
            )
            .await
            .unwrap();
            let flows = bird.wait_flows(20, |s| s.contains(&prefix));
            eprintln!("the upstream's flow4 table:\n{flows}");
            for part in [
                format!("dst {prefix}"),
                "proto 17".to_string(),
                "sport 123".to_string(),
                "length".to_string(),
                "468".to_string(),
                "1500".to_string(),
                // traffic-rate (type 0x8006), AS 0, rate 0.0: discard.
                "0x80060000, 0x0".to_string(),
            ] {
                assert!(flows.contains(&part), "{part} at the upstream: {flows}");
            }

            // SAFETY: kill(2) of a child we started.
            unsafe { libc::kill(gobgpd.pid() as i32, libc::SIGKILL) };
            let shown = bird.wait_route(&prefix, 20, |s| !s.contains(&prefix));
            assert!(!shown.contains(&prefix), "gone with gobgpd: {shown}");
            let flows = bird.wait_flows(20, |s| !s.contains(&prefix));
            assert!(
                !flows.contains(&prefix),
                "the rule gone with gobgpd: {flows}"
            );
        });
    });
    let _ = std::fs::remove_dir_all(&dir);
}

/// An operator's own gobgpd outlives Levee: what an earlier run announced (marked as Levee's)
/// is withdrawn at the upstream by the next run, and the operator's own route stays.
#[test]
fn an_earlier_runs_paths_are_withdrawn_and_nothing_else() {
    let lab = Lab::new();
    let dir = scratch_dir("escalation");
    let bird = Bird::start(&lab.client, &dir);
    let (ours, theirs) = (format!("{ATTACKED}/32"), "198.18.0.20/32".to_string());
    lab.protected.run(|| {
        runtime().block_on(async {
            let gobgpd = Managed::start(&settings(), &dir.join("gobgpd"))
                .await
                .unwrap();
            // The earlier run: a blackhole and a FlowSpec rule, then it is gone.
            {
                let mut earlier = Gobgp::connect(&gobgpd.api(), 64512).await.unwrap();
                blackhole_attacked(&mut earlier).await;
                earlier
                    .add_flowspec(
                        2,
                        Marks::for_time(Audience::Upstream, std::time::Duration::from_secs(600)),
                        &FlowRule {
                            dst: ATTACKED.parse().unwrap(),
                            proto: Some(17),
                            src_port: Some(123),
                            dst_port: None,
                            len: None,
                            action: FlowAction::Discard,
                        },
                    )
                    .await
                    .unwrap();
            }
            // The operator's own route, without Levee's mark.
            let mut next = Gobgp::connect(&gobgpd.api(), 64512).await.unwrap();
            operator_route(&mut next, "198.18.0.20").await;
            for prefix in [&ours, &theirs] {
                let shown = bird.wait_route(prefix, 60, |s| s.contains(prefix.as_str()));
                assert!(shown.contains(prefix.as_str()), "{shown}");
            }
            assert!(bird.wait_flows(20, |s| s.contains(&ours)).contains(&ours));

            assert_eq!(
                next.withdraw_stale(&settings().protected_prefixes)
                    .await
                    .unwrap(),
                2
            );
            let shown = bird.wait_route(&ours, 20, |s| !s.contains(&ours));
            assert!(!shown.contains(&ours), "Levee's route withdrawn: {shown}");
            let shown = bird.show_route(&theirs);
            assert!(
                shown.contains(&theirs),
                "the operator's route stays: {shown}"
            );
            let flows = bird.wait_flows(20, |s| !s.contains(&ours));
            assert!(!flows.contains(&ours), "Levee's rule withdrawn: {flows}");
            assert_eq!(
                next.withdraw_stale(&settings().protected_prefixes)
                    .await
                    .unwrap(),
                0,
                "nothing left of Levee's"
            );
        });
    });
    let _ = std::fs::remove_dir_all(&dir);
}

/// Announces a plain /32 without Levee's mark, as the operator's own tooling would.
async fn operator_route(api: &mut Gobgp, addr: &str) {
    use levee::escalation::gobgp::api;
    use prost::Message as _;
    let any = |name: &str, value: Vec<u8>| prost_types::Any {
        type_url: format!("type.googleapis.com/apipb.{name}"),
        value,
    };
    let family = api::Family {
        afi: api::family::Afi::Ip as i32,
        safi: api::family::Safi::Unicast as i32,
    };
    let path = api::Path {
        nlri: Some(any(
            "IPAddressPrefix",
            api::IpAddressPrefix {
                prefix_len: 32,
                prefix: addr.to_string(),
            }
            .encode_to_vec(),
        )),
        pattrs: vec![
            any(
                "OriginAttribute",
                api::OriginAttribute { origin: 0 }.encode_to_vec(),
            ),
            any(
                "NextHopAttribute",
                api::NextHopAttribute {
                    next_hop: LEVEE_SIDE.to_string(),
                }
                .encode_to_vec(),
            ),
            // The group mark the managed gobgpd's export policy asks for, without Levee's
            // rule mark: the operator's route still goes out, and is not Levee's.
            any(
                "LargeCommunitiesAttribute",
                api::LargeCommunitiesAttribute {
                    communities: vec![api::LargeCommunity {
                        global_admin: 64512,
                        local_data1: levee::escalation::gobgp::TO_UPSTREAM,
                        local_data2: 0,
                    }],
                }
                .encode_to_vec(),
            ),
        ],
        family: Some(family),
        ..Default::default()
    };
    api.raw()
        .add_path(api::AddPathRequest {
            table_type: api::TableType::Global as i32,
            path: Some(path),
            ..Default::default()
        })
        .await
        .unwrap();
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Announces the blackhole route for the attacked address; returns gobgpd's id of it.
async fn blackhole_attacked(api: &mut Gobgp) -> Vec<u8> {
    api.add_rtbh(
        1,
        Marks::for_time(Audience::Upstream, std::time::Duration::from_secs(600)),
        ATTACKED.parse().unwrap(),
        &[Community::BLACKHOLE],
    )
    .await
    .unwrap()
}
