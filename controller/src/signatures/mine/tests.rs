use super::*;

/// A deterministic stream of "random" numbers for the samples.
fn lcg(seed: &mut u64) -> u64 {
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    *seed >> 33
}

/// What a crowd sends the service: random source ports, lengths and payloads, TTL 64, id 0.
fn crowd(seed: &mut u64) -> Facts {
    Facts {
        dst_port: 5004,
        src_port: 1024 + (lcg(seed) % 60000) as u16,
        ip_len: 40 + (lcg(seed) % 200) as u16,
        ip_id: 0,
        ttl: 64,
        proto: 17,
        payload_len: 8,
        _pad: 0,
        payload: lcg(seed).to_ne_bytes(),
    }
}

/// A tool's flood: 64 bytes of 0x41 from source port 40000.
fn fingerprinted() -> Facts {
    Facts {
        src_port: 40000,
        ip_len: 92,
        payload: *b"AAAAAAAA",
        ..crowd(&mut 7)
    }
}

fn miner(calm: usize, attack: impl Fn(&mut u64) -> Facts) -> Miner {
    let mut m = Miner::default();
    let mut seed = 1;
    for _ in 0..calm {
        m.calm_sample(crowd(&mut seed));
    }
    let now = Instant::now();
    for _ in 0..1000 {
        m.attack_sample(now, attack(&mut seed));
    }
    m
}

#[test]
fn a_fingerprinted_flood_gets_the_smallest_signature_that_spares_the_crowd() {
    let m = miner(500, |_| fingerprinted());
    let c = m.mine(Instant::now(), &[]).expect("a signature");
    // The port and one field (the payload first on a tie) are enough.
    assert_eq!(c.signature.fields, field::DST_PORT | field::PAYLOAD);
    assert_eq!(c.signature.payload_mask, [0xff; 8]);
    assert_eq!(c.attack_cover, 1.0);
    assert_eq!(c.calm_cover, 0.0);
    assert!(c.signature.matches(&fingerprinted()));
    // Nothing left to cover once it is in force.
    assert_eq!(m.mine(Instant::now(), &[c.signature]), None);
}

#[test]
fn a_random_flood_has_no_signature() {
    let m = miner(500, crowd);
    // Its constant fields (port, TTL, id) are the crowd's too.
    assert_eq!(m.mine(Instant::now(), &[]), None);
}

#[test]
fn a_field_the_crowd_shares_is_not_taken() {
    // The flood's source port is fixed, but so is a tenth of the crowd's: the miner takes
    // another field (here the length), so the calm share falls under 1%.
    let mut m = miner(0, |_| fingerprinted());
    let mut seed = 3;
    for i in 0..500 {
        let mut f = crowd(&mut seed);
        if i % 10 == 0 {
            f.src_port = 40000;
        }
        m.calm_sample(f);
    }
    let mut flood = fingerprinted();
    flood.payload = [0; 8];
    let m2 = {
        let mut m2 = Miner::default();
        for f in m.calm.get(&5004).unwrap() {
            m2.calm_sample(*f);
        }
        let now = Instant::now();
        for i in 0..1000u64 {
            // Random payload, so only the port, length and source port are fixed.
            let mut f = flood;
            f.payload = (i * 2654435761).to_ne_bytes();
            m2.attack_sample(now, f);
        }
        m2
    };
    let c = m2.mine(Instant::now(), &[]).expect("a signature");
    assert_ne!(
        c.signature.fields,
        field::DST_PORT | field::SRC_PORT,
        "{c:?}"
    );
    assert!(c.calm_cover <= CALM_COVER, "{c:?}");
}

#[test]
fn without_enough_evidence_nothing_is_mined() {
    // Too few calm samples of the service: its share is not known.
    assert_eq!(
        miner(5, |_| fingerprinted()).mine(Instant::now(), &[]),
        None
    );
    // Too few attack samples.
    let mut m = Miner::default();
    let mut seed = 1;
    for _ in 0..500 {
        m.calm_sample(crowd(&mut seed));
    }
    for _ in 0..10 {
        m.attack_sample(Instant::now(), fingerprinted());
    }
    assert_eq!(m.mine(Instant::now(), &[]), None);
}
