//! `[escalation]`: defaults, and every refusal naming its field.

use super::*;

fn parsed(toml: &str) -> Result<EscalationSettings> {
    let f: EscalationFile = toml::from_str(toml)?;
    let mut s = EscalationSettings::default();
    apply(Some(f), &mut s)?;
    Ok(s)
}

const ON: &str = r#"
    mode = "on"
    asn = 64512
    router_id = "192.0.2.1"
    neighbors = [{ address = "10.0.0.1", asn = 65000 }]
    protected_prefixes = ["192.0.2.0/24", "2001:db8::/32"]
"#;

#[test]
fn a_complete_config_is_accepted_with_safe_defaults() {
    let s = parsed(ON).unwrap();
    assert_eq!(s.mode, EscalationMode::On);
    assert_eq!(s.communities, vec![Community::BLACKHOLE]);
    assert!(!s.auto && !s.auto_rtbh && !s.accept_flowspec);
    assert_eq!(s.api, BgpApi::Managed);
    assert_eq!(s.neighbors[0].max_prefixes, Neighbor::MAX_PREFIXES);
}

#[test]
fn what_cannot_be_safe_is_refused_with_the_field_named() {
    let cases = [
        (
            "mode = \"on\"\nasn = 1\nrouter_id = \"192.0.2.1\"\nneighbors = [{ address = \"10.0.0.1\", asn = 2 }]",
            "protected_prefixes",
        ),
        (&format!("{ON}\nmax_ttl = \"0s\""), "max_ttl"),
        (&format!("{ON}\ndefault_ttl = \"2h\""), "default_ttl"),
        (&format!("{ON}\nauto_rtbh = true"), "auto_rtbh"),
        (&format!("{ON}\nauto = true"), "link_capacity_bps"),
        (
            "mode = \"dry-run\"\napi = \"unix:///x\"\nprotected_prefixes = [\"192.0.2.0/24\"]\naccept_flowspec = true",
            "accept_flowspec",
        ),
        (
            &format!("{ON}\nauto = true\nlink_capacity_bps = 1\nauto_link_share = 1.5"),
            "auto_link_share",
        ),
        (
            "protected_prefixes = [\"0.0.0.0/0\"]",
            "protected_prefixes[0]",
        ),
        (
            "protected_prefixes = [\"192.0.2.7/24\"]",
            "protected_prefixes[0]",
        ),
        ("communities = [\"65535\"]", "communities[0]"),
        ("mode = \"maybe\"", "escalation.mode"),
        ("api = \"http://x\"", "escalation.api"),
        ("asn = 0", "escalation.asn"),
        (
            "neighbors = [{ address = \"nowhere\", asn = 1 }]",
            "neighbors[0].address",
        ),
        (
            "neighbors = [{ address = \"10.0.0.1\", asn = 1, max_prefixes = 0 }]",
            "neighbors[0].max_prefixes",
        ),
    ];
    for (toml, name) in cases {
        let e = format!("{:#}", parsed(toml).unwrap_err());
        assert!(
            e.starts_with("field escalation.") && e.contains(name),
            "{toml}: {e}"
        );
        assert!(!e.contains('\n'), "one line: {e}");
    }
}

#[test]
fn an_operators_own_daemon_needs_no_session_settings() {
    let s = parsed(
        "mode = \"dry-run\"\napi = \"unix:///run/gobgpd/api.sock\"\nprotected_prefixes = [\"192.0.2.0/24\"]",
    )
    .unwrap();
    assert_eq!(s.api, BgpApi::Unix("/run/gobgpd/api.sock".into()));
    assert_eq!(
        parse_api("127.0.0.1:50051").unwrap(),
        BgpApi::Tcp("127.0.0.1:50051".into())
    );
}

#[test]
fn a_fleet_neighbour_turns_sharing_on_and_its_group_is_checked() {
    let fleet = r#"
    mode = "on"
    asn = 64512
    router_id = "192.0.2.1"
    neighbors = [{ address = "10.0.0.1", asn = 65000 }, { address = "10.0.0.9", asn = 64512, role = "fleet" }]
    protected_prefixes = ["192.0.2.0/24"]
"#;
    let s = parsed(fleet).unwrap();
    assert_eq!(
        s.neighbors.iter().map(|n| n.role).collect::<Vec<_>>(),
        [Role::Upstream, Role::Fleet]
    );
    assert!(s.fleet.share, "a fleet neighbour shares by default");
    assert!(
        !parsed(ON).unwrap().fleet.share,
        "no fleet neighbour: nothing shared"
    );
    let s = parsed(&format!(
        "{fleet}\n[fleet]\nshare = false\ncommunities = [\"64512:4040\"]\nmax_active = 9"
    ))
    .unwrap();
    assert!(!s.fleet.share);
    assert_eq!(s.fleet.communities, vec![Community(64512, 4040)]);
    assert_eq!(s.fleet.max_active, 9);
    for (extra, field) in [
        ("[fleet]\ncommunities = [\"4040\"]", "fleet.communities[0]"),
        (
            "[fleet]\nmax_per_minute = 0",
            "fleet.max_active and max_per_minute",
        ),
        ("[fleet]\nshared = true", "unknown field"),
    ] {
        let e = format!("{:#}", parsed(&format!("{fleet}\n{extra}")).unwrap_err());
        assert!(e.contains(field), "{extra}: {e}");
    }
    let e = parsed(&format!("{ON}\n[fleet]\nshare = true")).unwrap_err();
    assert!(
        format!("{e:#}").contains("field escalation.fleet.share"),
        "{e:#}"
    );
    let e = parsed(&fleet.replace("\"fleet\"", "\"reflector\"")).unwrap_err();
    assert!(
        format!("{e:#}").contains("field escalation.neighbors[1].role"),
        "{e:#}"
    );
}
