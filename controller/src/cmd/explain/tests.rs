use filter_common::abi::Action;

use super::{limits::tokens, received::rule_match, *};

fn stage(name: StageName, say: Say) -> Stage {
    Stage::new(name, say, name.name())
}

#[test]
fn the_first_stage_that_objects_decides_and_the_mode_gives_the_action() {
    let run = |mode| {
        verdict(
            "eth0".into(),
            mode,
            vec![
                stage(StageName::Allowlist, Say::Passes),
                stage(
                    StageName::Signatures,
                    Say::Depends(vec!["--sport"], Some(Reason::AmpPort)),
                ),
                stage(StageName::Blocklist, Say::Objects(Reason::Blocklisted)),
                stage(StageName::PerSource, Say::Objects(Reason::SourcePenalty)),
            ],
        )
    };
    let v = run(Mode::Enforce);
    assert_eq!((v.action, v.reason), (Action::Drop, Reason::Blocklisted));
    assert_eq!(v.decided_by.as_deref(), Some("blocklist"));
    assert_eq!(v.unless, ["signatures (--sport)"]);
    let outcomes: Vec<_> = v.stages.iter().map(|s| s.outcome).collect();
    use Outcome::*;
    assert_eq!(outcomes, [Passes, Depends, Decides, NotReached]);
    assert_eq!(v.stages[3].reason, Some(Reason::SourcePenalty));
    assert_eq!(run(Mode::Monitor).action, Action::WouldDrop);
    let off = run(Mode::Off);
    assert_eq!((off.action, off.reason), (Action::Pass, Reason::ModeOff));
    assert!(off.stages.iter().all(|s| s.outcome == NotReached));

    let allowed = verdict(
        "eth0".into(),
        Mode::Lockdown,
        vec![
            stage(StageName::Allowlist, Say::Objects(Reason::Allowlisted)),
            stage(StageName::Lockdown, Say::Objects(Reason::Lockdown)),
        ],
    );
    assert_eq!(
        (allowed.action, allowed.reason),
        (Action::Pass, Reason::Allowlisted)
    );
    let clean = verdict(
        "eth0".into(),
        Mode::Enforce,
        vec![stage(StageName::Allowlist, Say::Passes)],
    );
    assert_eq!((clean.action, clean.reason), (Action::Pass, Reason::Clean));
    assert_eq!(clean.decided_by, None);
}

#[test]
fn tokens_left_follow_the_bucket() {
    let limit = filter_common::config::Rate {
        pps: 100,
        burst_packets: 20,
        ..Default::default()
    }
    .encode();
    let now = 1_000 * NS;
    assert_eq!(tokens(&limit, 0, now), Some(20), "idle: a full bucket");
    // Five packets paid at `now`: 15 left.
    assert_eq!(tokens(&limit, now + 5 * limit.pkt_cost_ns, now), Some(15));
    assert_eq!(tokens(&limit, now + limit.pkt_burst_ns, now), Some(0));
    assert_eq!(tokens(&Limit::default(), 0, now), None);
    assert_eq!(ceiling_pps(&limit, 2), Some(200));
}

#[test]
fn upstream_rules_match_on_what_is_known() {
    let mut rule = UpstreamRule {
        family: 4,
        action: filter_common::abi::upstream_action::DISCARD,
        proto: [17, 17],
        src_port: [123, 123],
        dst_port: [0, u16::MAX],
        len: [0, u16::MAX],
        ports: 1,
        ..UpstreamRule::default()
    };
    let packet = |proto, sport| {
        ExplainPacket::new("192.0.2.7".parse().unwrap(), proto, sport, None, false).unwrap()
    };
    assert_eq!(
        rule_match(&rule, &packet(Some(17), Some(123))),
        Some(vec![])
    );
    assert_eq!(rule_match(&rule, &packet(Some(17), Some(53))), None);
    assert_eq!(rule_match(&rule, &packet(Some(1), None)), None);
    assert_eq!(
        rule_match(&rule, &packet(None, None)),
        Some(vec!["--proto", "--sport"])
    );
    rule.src = [198, 51, 100, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    rule.src_mask = [255, 255, 255, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    assert_eq!(
        rule_match(&rule, &packet(Some(17), Some(123))),
        None,
        "another source"
    );
    let s = received(&[rule], &packet(Some(17), Some(123)));
    assert_eq!(s.say, Say::Passes);
}

#[test]
fn a_rule_that_may_match_leaves_a_later_sure_discard_deciding_if_it_does_not() {
    let any = UpstreamRule {
        family: 4,
        action: filter_common::abi::upstream_action::DISCARD,
        proto: [0, 255],
        src_port: [0, u16::MAX],
        dst_port: [0, u16::MAX],
        len: [0, u16::MAX],
        ..UpstreamRule::default()
    };
    let mut to_one_host = any;
    to_one_host.dst = [198, 18, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    to_one_host.dst_mask = [255, 255, 255, 255, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let mut from_a_net = any;
    from_a_net.src = [203, 0, 113, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    from_a_net.src_mask = [255, 255, 255, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let rules = [to_one_host, from_a_net];
    let from = |dst: Option<&str>| {
        ExplainPacket::new("203.0.113.9".parse().unwrap(), None, None, None, false)
            .unwrap()
            .to(dst.map(|d| d.parse().unwrap()))
            .unwrap()
    };
    // Whatever the destination, it is discarded: rule 0 only decides which rule does it.
    let s = received(&rules, &from(None));
    assert_eq!(s.say, Say::Objects(Reason::UpstreamRule));
    assert!(s.view.say.contains("rule 1 of 2 matches"), "{}", s.view.say);
    // Were rule 0 a rate, the drop would depend on the destination (and the rate).
    let mut rated = rules;
    rated[0].action = filter_common::abi::upstream_action::RATE;
    let s = received(&rated, &from(None));
    assert_eq!(
        s.say,
        Say::Depends(vec!["--dst", "the rule's rate"], Some(Reason::UpstreamRule))
    );
    let s = received(&rules, &from(Some("198.18.0.1")));
    assert_eq!(s.say, Say::Objects(Reason::UpstreamRule));
    assert_eq!(s.view.say, "rule 1 of 2 matches: discard");
}
