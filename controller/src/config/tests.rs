//! Config parsing: defaults, the example file, and every refusal naming its field.

use super::*;
use filter_common::abi::Class;

fn err(text: &str) -> String {
    format!("{:#}", parse(text).expect_err("expected an error"))
}

#[test]
fn empty_file_gives_defaults() {
    assert_eq!(parse("").unwrap(), Settings::default());
}

#[test]
fn example_config_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../levee.example.toml");
    let s = load(&path).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(s.daemon.interfaces, vec!["eth0".to_string()]);
    assert_eq!(s.mode, Mode::Monitor);
    assert_eq!(s.filter.limits[Class::Udp].pps, 10_000);
    assert!(!s.lists.block.is_empty());
    assert_eq!(s.escalation.mode, EscalationMode::Off);
    assert_eq!(s.escalation.protected_prefixes.len(), 1);
}

#[test]
fn unknown_fields_are_named() {
    let e = err("moed = \"enforce\"\n");
    assert!(e.contains("unknown field `moed`"), "{e}");
    let e = err("[limits.udp]\npps = 5\nbrust = 3\n");
    assert!(
        e.starts_with("line 3, column 1: unknown field `brust`"),
        "{e}"
    );
    let e = err("[limits.sctp]\npps = 5\n");
    assert!(e.contains("unknown field `sctp`"), "{e}");
}

#[test]
fn bad_values_name_the_field_and_reason() {
    for (text, want) in [
        ("mode = \"panic\"", "field mode: unknown mode \"panic\""),
        ("xdp_mode = \"fast\"", "field xdp_mode: unknown XDP mode"),
        ("penalty = \"ten\"", "field penalty: malformed duration"),
        ("penalty = \"600y\"", "field penalty: must be at most 24h"),
        (
            "[detection]\nblock_ttl = \"585y\"",
            "field detection.block_ttl: must be between 1s and 100 years",
        ),
        (
            "[detection]\noffence_window = \"2d\"",
            "field detection.offence_window: must be at most 24h",
        ),
        (
            "[sources]\nipv4_prefix = 40",
            "field sources.ipv4_prefix: must be between 8 and 32, got 40",
        ),
        ("[sources]\nipv6_prefix = 80", "field sources.ipv6_prefix"),
        (
            "[sources]\nsketch_threshold = 16",
            "field sources.sketch_threshold",
        ),
        (
            "[sources]\nsketch_window = \"5s\"",
            "field sources.sketch_window",
        ),
        (
            "[sources]\nmax_new_per_sec = 0",
            "field sources.max_new_per_sec: must be between 100 and 100000000, got 0",
        ),
        (
            "[strict]\nfamiliar_max_new_per_sec = 50",
            "field strict.familiar_max_new_per_sec: must be between 100 and 100000000, got 50",
        ),
        (
            "[lists]\nblock = [\"192.0.2.0/24\", \"300.1.1.1\"]",
            "field lists.block[1]: malformed CIDR \"300.1.1.1\"",
        ),
        ("[lists]\nallow = [\"192.0.2.7/24\"]", "host bits set"),
        (
            "[limits.udp]\npps = 100\nburst = 0",
            "field limits.udp.burst",
        ),
        ("[events]\nring_bytes = 1000", "field events.ring_bytes"),
        (
            "metrics = \"localhost\"",
            "field metrics: malformed address",
        ),
        (
            "[detection]\nonset_factor = 0.5",
            "field detection.onset_factor",
        ),
        (
            "[detection]\nrecovery_factor = 9.0",
            "field detection.recovery_factor: must not exceed",
        ),
        (
            "[detection]\nblock_ttl = \"0s\"",
            "field detection.block_ttl",
        ),
        ("[detection.floor_pps]\nudpp = 5", "unknown field `udpp`"),
        ("interfaces = [\"eth 0\"]", "field interfaces"),
        ("mode = 3", "invalid type"),
    ] {
        let e = err(text);
        assert!(e.contains(want), "{text:?}: got {e:?}, want {want:?}");
        assert!(!e.contains('\n'), "{text:?}: one line, got {e}");
    }
}

#[test]
fn settings_encode_into_the_dataplane_config() {
    let s = parse(
        "mode = \"enforce\"\npenalty = \"30s\"\n[sources]\nipv4_prefix = 24\nsketch_window = \"8ms\"\n\
         [aggregate.udp]\npps = 1000\nburst = 100\n[signatures]\nfragments = true\n",
    )
    .unwrap();
    let c = s.dataplane_config(2);
    assert_eq!(c.mode(), Mode::Enforce);
    assert_eq!(c.penalty_ns, 30_000_000_000);
    assert_eq!(c.source_mask_v4, source_mask_v4(24));
    assert_eq!(c.sketch_window_shift, 23);
    assert_eq!(
        c.new_source_cost_ns, 20_000,
        "100k new sources a second over two CPUs"
    );
    assert_ne!(c.flags & flags::SIG_FRAGMENTS, 0);
    assert_eq!(
        c.aggregate[Class::Udp as usize].pkt_cost_ns,
        2_000_000,
        "half the ceiling per CPU"
    );
    assert_eq!(
        c.source[Class::Udp as usize].pkt_cost_ns,
        100_000,
        "default 10k pps"
    );
}
