//! How received rules are compiled: operators, lengths, the program form, the bounds.
use super::*;

fn item(op: u32, value: u64) -> api::FlowSpecComponentItem {
    api::FlowSpecComponentItem { op, value }
}

#[test]
fn numeric_operators_become_one_range_or_a_reason() {
    let max = 65535;
    assert_eq!(range(&[item(0x81, 123)], max, "p"), Ok((123, 123)));
    // >= 468 AND <= 1500, with the length and end bits gobgpd sets.
    assert_eq!(
        range(&[item(0x13, 468), item(0xd5, 1500)], max, "p"),
        Ok((468, 1500))
    );
    assert_eq!(range(&[item(0x02, 1023)], max, "p"), Ok((1024, 65535)));
    assert_eq!(range(&[item(0x04, 1024)], max, "p"), Ok((0, 1023)));
    assert!(
        range(&[item(0x01, 53), item(0x81, 123)], max, "p")
            .unwrap_err()
            .contains("alternatives")
    );
    assert!(
        range(&[item(0x06, 53)], max, "p")
            .unwrap_err()
            .contains("operator")
    );
    assert!(
        range(&[item(0x01, 70000)], max, "p")
            .unwrap_err()
            .contains("above")
    );
    assert!(
        range(&[item(0x02, 100), item(0x44, 50)], max, "p")
            .unwrap_err()
            .contains("matches nothing")
    );
}

#[test]
fn length_ranges_padding_could_blur_are_refused() {
    for (lo, hi, ok) in [
        (468, 1500, true),
        (0, 100, true),
        (20, 46, true),
        (47, 65535, true),
        (28, 100, false),
        (46, 100, false),
        (0, 45, false),
    ] {
        assert_eq!(exact_length(lo, hi, true).is_ok(), ok, "{lo}-{hi}");
    }
    assert!(exact_length(40, 100, false).is_ok());
    assert!(exact_length(41, 100, false).is_err());
}

#[test]
fn the_program_form_keeps_every_component() {
    let r = EnforcedRule {
        dst: "192.0.2.0/24".parse().unwrap(),
        src: None,
        proto: Some((17, 17)),
        src_port: Some((123, 123)),
        dst_port: None,
        len: Some((468, 1500)),
        action: FlowAction::RateBytes(1_000_000),
    };
    let a = r.to_abi(2);
    assert_eq!((a.family, a.action), (4, upstream_action::RATE));
    assert_eq!(&a.dst[..4], &[192, 0, 2, 0]);
    assert_eq!(&a.dst_mask[..4], &[255, 255, 255, 0]);
    assert_eq!(a.src_mask, [0; 16], "no source: matches every source");
    assert_eq!(
        (a.proto, a.src_port, a.dst_port),
        ([17, 17], [123, 123], [0, 65535])
    );
    assert_eq!(a.len, [468, 1500]);
    assert!(a.limit.byte_cost_fp16 > 0 && a.limit.pkt_cost_ns == 0);
    assert_eq!(
        r.to_string(),
        "dst 192.0.2.0/24 proto 17 sport 123 len 468-1500 rate 1000000 B/s"
    );
}

#[test]
fn a_wide_destination_is_refused_unless_a_narrow_source_holds_it_in() {
    let rule = |dst: &str, src: Option<&str>| EnforcedRule {
        dst: dst.parse().unwrap(),
        src: src.map(|s| s.parse().unwrap()),
        proto: None,
        src_port: None,
        dst_port: None,
        len: None,
        action: FlowAction::Discard,
    };
    let min = (24, 48);
    assert!(too_wide(&rule("192.0.0.0/16", None), min));
    assert!(too_wide(&rule("192.0.0.0/16", Some("10.0.0.0/8")), min));
    assert!(!too_wide(
        &rule("192.0.0.0/16", Some("203.0.113.7/32")),
        min
    ));
    assert!(!too_wide(&rule("192.0.2.0/24", None), min));
    assert!(too_wide(
        &rule("2001:db8::/32", Some("2001:db8:1::/40")),
        min
    ));
}
