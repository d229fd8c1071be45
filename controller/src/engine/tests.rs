//! The engine's rules, one test per rule, fed second by second as the controller does.

use super::*;

const SECOND: Duration = Duration::from_secs(1);

const UDP: usize = Class::Udp as usize;

fn rates(udp: u64) -> [u64; Class::COUNT] {
    let mut r = [100; Class::COUNT];
    r[UDP] = udp;
    r
}

/// An engine that has learned a calm UDP baseline of about 5000 pps.
fn calm_engine() -> Engine {
    let mut e = Engine::new(EngineConfig::default());
    for _ in 0..200 {
        assert!(e.observe(SECOND, rates(5_000), Mode::Monitor).is_empty());
    }
    assert!((4_900..=5_000).contains(&e.baseline_pps(Class::Udp)));
    e
}

#[test]
fn onset_is_declared_in_the_first_second_over_the_threshold() {
    let mut e = calm_engine();
    let d = e.observe(SECOND, rates(200_000), Mode::Monitor);
    assert_eq!(
        d[0],
        Decision::AttackStarted {
            class: Class::Udp,
            pps: 200_000,
            baseline_pps: e.baseline_pps(Class::Udp)
        }
    );
    assert_eq!(d[1], Decision::SwitchMode { to: Mode::Enforce });
    assert_eq!(e.state(Class::Udp), AttackState::UnderAttack);
    assert_eq!(e.state(Class::TcpSyn), AttackState::Normal);
}

#[test]
fn growth_within_the_factor_or_under_the_floor_is_no_attack() {
    let mut e = calm_engine();
    // 3x the baseline: below the 4x onset factor.
    for _ in 0..30 {
        assert!(e.observe(SECOND, rates(15_000), Mode::Monitor).is_empty());
    }
    // A class with a tiny baseline stays calm below its floor.
    let mut e = Engine::new(EngineConfig::default());
    let mut r = rates(0);
    for _ in 0..50 {
        r[Class::Icmp as usize] = 10;
        e.observe(SECOND, r, Mode::Monitor);
    }
    r[Class::Icmp as usize] = 900;
    assert!(
        e.observe(SECOND, r, Mode::Monitor).is_empty(),
        "40x a tiny baseline, under the floor"
    );
}

#[test]
fn hysteresis_keeps_a_hovering_rate_from_flapping() {
    let mut e = calm_engine();
    e.observe(SECOND, rates(100_000), Mode::Enforce);
    // Between the recovery line (2x baseline, 10k) and the onset line (4x, 20k): the
    // attack neither ends nor restarts, whatever the rate does in that band.
    let mut decisions = Vec::new();
    for i in 0..60 {
        let pps = if i % 2 == 0 { 12_000 } else { 19_000 };
        decisions.extend(e.observe(SECOND, rates(pps), Mode::Enforce));
    }
    assert!(decisions.is_empty(), "{decisions:?}");
    assert_eq!(e.state(Class::Udp), AttackState::UnderAttack);
}

#[test]
fn recovery_needs_calm_seconds_and_restores_monitor() {
    let mut e = calm_engine();
    e.observe(SECOND, rates(100_000), Mode::Monitor);
    let mut d = Vec::new();
    for _ in 0..9 {
        d.extend(e.observe(SECOND, rates(5_000), Mode::Enforce));
    }
    assert!(d.is_empty());
    assert_eq!(e.state(Class::Udp), AttackState::Recovering);
    assert_eq!(
        e.attack_age(Class::Udp),
        Some(9 * SECOND),
        "declared 9 s ago"
    );
    assert_eq!(e.attack_age(Class::TcpSyn), None);
    // A relapse while recovering goes back to under attack, without a second "started".
    assert!(e.observe(SECOND, rates(50_000), Mode::Enforce).is_empty());
    assert_eq!(e.state(Class::Udp), AttackState::UnderAttack);
    assert_eq!(
        e.attack_age(Class::Udp),
        Some(10 * SECOND),
        "the same attack"
    );
    for _ in 0..9 {
        assert!(e.observe(SECOND, rates(5_000), Mode::Enforce).is_empty());
    }
    let d = e.observe(SECOND, rates(5_000), Mode::Enforce);
    assert_eq!(
        d,
        vec![
            Decision::AttackEnded { class: Class::Udp },
            Decision::SwitchMode { to: Mode::Monitor }
        ]
    );
    assert_eq!(e.attack_age(Class::Udp), None, "over");
    // The baseline did not learn the attack.
    assert!(e.baseline_pps(Class::Udp) <= 5_000);
}

#[test]
fn an_operator_choice_of_mode_is_not_undone() {
    let mut e = calm_engine();
    // Already enforcing: the engine does not switch, so it does not switch back either.
    assert_eq!(e.observe(SECOND, rates(100_000), Mode::Enforce).len(), 1);
    for _ in 0..10 {
        e.observe(SECOND, rates(5_000), Mode::Enforce);
    }
    assert!(!e.under_attack());
    // Switched by the engine, then the operator took over.
    e.observe(SECOND, rates(100_000), Mode::Monitor);
    e.mode_set_by_operator();
    let mut d = Vec::new();
    for _ in 0..10 {
        d.extend(e.observe(SECOND, rates(5_000), Mode::Enforce));
    }
    assert_eq!(d, vec![Decision::AttackEnded { class: Class::Udp }]);
}

#[test]
fn repeat_offenders_are_escalated_and_one_offence_is_not() {
    let mut e = calm_engine();
    let flooder: IpAddr = "198.51.100.7".parse().unwrap();
    let once: IpAddr = "198.51.100.8".parse().unwrap();
    assert_eq!(e.offence(once, Class::Udp), None);
    assert_eq!(e.offence(flooder, Class::Udp), None);
    e.observe(SECOND, rates(5_000), Mode::Enforce);
    assert_eq!(e.offence(flooder, Class::Udp), None);
    assert_eq!(
        e.offence(flooder, Class::Udp),
        Some(Decision::Block {
            source: flooder,
            ttl: Duration::from_secs(600),
            offences: 3
        })
    );
    // Offences older than the window are forgotten.
    assert_eq!(e.offence(once, Class::Udp), None);
    for _ in 0..61 {
        e.observe(SECOND, rates(5_000), Mode::Enforce);
    }
    assert_eq!(
        e.offence(once, Class::Udp),
        None,
        "two offences a minute apart"
    );
}

/// A flash crowd: the rate of a class jumps twentyfold because many sources come, each
/// within its limits. The engine may call it an attack (rates cannot tell), but since no
/// crowd source offends, none is ever blocked.
#[test]
fn a_flash_crowd_is_never_blocked_for_being_large() {
    let mut e = calm_engine();
    let mut blocks = Vec::new();
    for _ in 0..120 {
        let d = e.observe(SECOND, rates(100_000), Mode::Enforce);
        blocks.extend(
            d.into_iter()
                .filter(|d| matches!(d, Decision::Block { .. })),
        );
    }
    assert!(blocks.is_empty());
    // Individual crowd members that each offend once (a burst at the edge of their limit)
    // are not escalated either.
    e.observe(SECOND, rates(5_000), Mode::Enforce);
    let mut e = calm_engine();
    for i in 0..10_000u32 {
        let member = IpAddr::from((0xc633_6400u32 + i).to_be_bytes());
        assert_eq!(e.offence(member, Class::Udp), None);
    }
}

#[test]
fn disabled_engine_decides_nothing() {
    let mut e = Engine::new(EngineConfig {
        enabled: false,
        ..EngineConfig::default()
    });
    assert!(
        e.observe(SECOND, rates(10_000_000), Mode::Monitor)
            .is_empty()
    );
    assert_eq!(e.offence("192.0.2.1".parse().unwrap(), Class::Udp), None);
}

#[test]
fn under_attack_an_offender_is_blocked_at_once_and_calm_classes_stay_lenient() {
    let mut e = Engine::new(EngineConfig::default());
    let mut r = [100; Class::COUNT];
    for _ in 0..100 {
        r[Class::Udp as usize] = 5_000;
        e.observe(SECOND, r, Mode::Enforce);
    }
    r[Class::Udp as usize] = 300_000;
    e.observe(SECOND, r, Mode::Enforce);
    let flooder: IpAddr = "2001:db8::66".parse().unwrap();
    assert_eq!(
        e.offence(flooder, Class::Udp),
        Some(Decision::Block {
            source: flooder,
            ttl: Duration::from_secs(600),
            offences: 1
        })
    );
    assert_eq!(e.offence("192.0.2.9".parse().unwrap(), Class::TcpSyn), None);
}

#[test]
fn tightening_is_off_by_default_and_restored_after_the_attack() {
    let run = |factor: f64| {
        let mut e = Engine::new(EngineConfig {
            tighten_factor: factor,
            ..EngineConfig::default()
        });
        let mut r = [100; Class::COUNT];
        let mut d = Vec::new();
        for pps in std::iter::repeat_n(5_000, 100)
            .chain([300_000])
            .chain(std::iter::repeat_n(5_000, 10))
        {
            r[Class::Udp as usize] = pps;
            d.extend(e.observe(SECOND, r, Mode::Enforce));
        }
        d.into_iter()
            .filter(|d| matches!(d, Decision::ScaleLimits { .. }))
            .collect::<Vec<_>>()
    };
    assert!(run(1.0).is_empty());
    assert_eq!(
        run(0.5),
        vec![
            Decision::ScaleLimits {
                class: Class::Udp,
                factor: 0.5
            },
            Decision::ScaleLimits {
                class: Class::Udp,
                factor: 1.0
            }
        ]
    );
}

#[test]
fn time_is_what_elapsed_not_a_count_of_calls() {
    let mut e = calm_engine();
    e.observe(SECOND, rates(200_000), Mode::Monitor);
    e.observe(SECOND, rates(5_000), Mode::Enforce);
    assert_eq!(e.state(Class::Udp), AttackState::Recovering);
    // One late tick that covers ten calm seconds ends the attack at once...
    let d = e.observe(Duration::from_secs(10), rates(5_000), Mode::Enforce);
    assert!(
        d.contains(&Decision::AttackEnded { class: Class::Udp }),
        "{d:?}"
    );
    // ...and ten quick ticks of 10 ms are 100 ms, not ten seconds.
    let mut e = calm_engine();
    e.observe(SECOND, rates(200_000), Mode::Monitor);
    e.observe(SECOND, rates(5_000), Mode::Enforce);
    for _ in 0..10 {
        let d = e.observe(Duration::from_millis(10), rates(5_000), Mode::Enforce);
        assert!(d.is_empty(), "{d:?}");
    }
    assert_eq!(e.state(Class::Udp), AttackState::Recovering);
}

#[test]
fn an_adopted_enforce_is_released_after_calm_seconds() {
    let mut e = Engine::new(EngineConfig::default());
    e.adopt_enforce();
    assert!(e.holds_enforce());
    for _ in 0..9 {
        assert!(e.observe(SECOND, rates(100), Mode::Enforce).is_empty());
    }
    assert_eq!(
        e.observe(SECOND, rates(100), Mode::Enforce),
        [Decision::SwitchMode { to: Mode::Monitor }]
    );
    assert!(!e.holds_enforce());
}

#[test]
fn a_flood_is_spread_only_while_what_passes_the_limiter_is_itself_an_attack() {
    let mut e = calm_engine();
    // Calm: nothing is spread, whatever the rates.
    e.observe_unstopped(rates(900_000));
    assert!(!e.spread(Class::Udp));
    // A flood of a few faces: the limiter stops it, what passes is the crowd.
    e.observe(SECOND, rates(600_000), Mode::Enforce);
    e.observe_unstopped(rates(6_000));
    assert_eq!(e.state(Class::Udp), AttackState::UnderAttack);
    assert!(
        !e.spread(Class::Udp),
        "the limiter holds a flood with faces"
    );
    // A spread flood: sources within their limits carry it past the onset line (4x 5000)...
    e.observe(SECOND, rates(600_000), Mode::Enforce);
    e.observe_unstopped(rates(400_000));
    assert!(e.spread(Class::Udp));
    assert!(!e.spread(Class::TcpSyn), "per class");
    // ...and it stays spread between the calm and onset lines (hysteresis)...
    e.observe(SECOND, rates(600_000), Mode::Enforce);
    e.observe_unstopped(rates(15_000));
    assert!(e.spread(Class::Udp));
    // ...until it falls below the calm line (2x 5000).
    e.observe(SECOND, rates(600_000), Mode::Enforce);
    e.observe_unstopped(rates(9_000));
    assert!(!e.spread(Class::Udp));
    // The attack's end clears it.
    e.observe_unstopped(rates(400_000));
    assert!(e.spread(Class::Udp));
    e.observe(Duration::from_secs(20), rates(5_000), Mode::Enforce);
    e.observe(Duration::from_secs(20), rates(5_000), Mode::Enforce);
    assert_eq!(e.state(Class::Udp), AttackState::Normal);
    assert!(!e.spread(Class::Udp));
}
