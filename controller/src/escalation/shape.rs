//! The attack's shape, from sampled headers: per traffic class, the destination most packets
//! go to, their protocol, and the port that most of them share. This is what an automatic
//! FlowSpec rule matches, so the upstream drops the flood and lets the service's other
//! traffic through.

use std::{
    collections::{HashMap, VecDeque},
    net::IpAddr,
};

use super::{FlowAction, FlowRule};

/// Seconds of samples the shape covers.
const WINDOW_SECS: usize = 10;
/// Destinations tallied in one second at most (a flood has few; this bounds memory).
const MAX_DESTINATIONS: usize = 4096;
/// The share of a destination's samples one port must have to be part of the rule.
const PORT_SHARE: f64 = 0.5;

/// Samples of one (destination, class) in one second.
#[derive(Debug, Default)]
struct Tally {
    packets: u64,
    protos: HashMap<u8, u64>,
    src_ports: HashMap<u16, u64>,
    dst_ports: HashMap<u16, u64>,
}

impl Tally {
    fn add(&mut self, other: &Tally) {
        self.packets += other.packets;
        for (map, from) in [
            (&mut self.src_ports, &other.src_ports),
            (&mut self.dst_ports, &other.dst_ports),
        ] {
            for (k, v) in from {
                *map.entry(*k).or_default() += v;
            }
        }
        for (k, v) in &other.protos {
            *self.protos.entry(*k).or_default() += v;
        }
    }
}

/// The most common key and its count.
fn dominant<K: Copy + Ord>(map: &HashMap<K, u64>) -> Option<(K, u64)> {
    // Ties go to the smallest key, so the answer does not depend on hash order.
    map.iter()
        .map(|(k, v)| (*k, *v))
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
}

/// A sliding window of per-second tallies by (destination, class).
#[derive(Debug, Default)]
pub struct Shapes {
    seconds: VecDeque<HashMap<(IpAddr, u32), Tally>>,
}

impl Shapes {
    /// Starts a new second, dropping the oldest beyond the window.
    pub fn tick(&mut self) {
        self.seconds.push_back(HashMap::new());
        while self.seconds.len() > WINDOW_SECS {
            self.seconds.pop_front();
        }
    }

    /// Counts one sampled header.
    pub fn record(&mut self, dst: IpAddr, class: u32, proto: u8, src_port: u16, dst_port: u16) {
        if self.seconds.is_empty() {
            self.tick();
        }
        let second = self.seconds.back_mut().expect("a current second");
        if second.len() >= MAX_DESTINATIONS && !second.contains_key(&(dst, class)) {
            return;
        }
        let t = second.entry((dst, class)).or_default();
        t.packets += 1;
        *t.protos.entry(proto).or_default() += 1;
        if matches!(proto, 6 | 17) {
            *t.src_ports.entry(src_port).or_default() += 1;
            *t.dst_ports.entry(dst_port).or_default() += 1;
        }
    }

    /// The FlowSpec rule (discard) for the class's heaviest destination and what most of its
    /// packets share: their protocol, and the source port (reflection: NTP's 123) or else the
    /// destination port that at least half of them have. None without samples of the class.
    pub fn rule(&self, class: u32) -> Option<FlowRule> {
        let mut sum: HashMap<IpAddr, Tally> = HashMap::new();
        for second in &self.seconds {
            for ((dst, c), t) in second {
                if *c == class {
                    sum.entry(*dst).or_default().add(t);
                }
            }
        }
        let (dst, t) = sum
            .into_iter()
            .max_by(|a, b| a.1.packets.cmp(&b.1.packets).then(b.0.cmp(&a.0)))?;
        let (proto, _) = dominant(&t.protos)?;
        let share = |n: u64| n as f64 >= t.packets as f64 * PORT_SHARE;
        let (mut src_port, mut dst_port) = (None, None);
        if let Some((p, _)) = dominant(&t.src_ports).filter(|(_, n)| share(*n)) {
            src_port = Some(p);
        } else if let Some((p, _)) = dominant(&t.dst_ports).filter(|(_, n)| share(*n)) {
            dst_port = Some(p);
        }
        Some(FlowRule {
            dst,
            proto: Some(proto),
            src_port,
            dst_port,
            len: None,
            action: FlowAction::Discard,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_heaviest_destination_and_the_port_most_packets_share() {
        let mut s = Shapes::default();
        assert_eq!(s.rule(2), None);
        // NTP reflection to .10: source port 123, destination ports all over.
        for i in 0..90u16 {
            s.record(ip("192.0.2.10"), 2, 17, 123, 1024 + i);
        }
        // A little traffic to another host, and another class to the same host.
        for _ in 0..10 {
            s.record(ip("192.0.2.11"), 2, 17, 5000, 53);
            s.record(ip("192.0.2.10"), 0, 6, 4000, 443);
        }
        let r = s.rule(2).unwrap();
        assert_eq!(
            (r.dst, r.proto, r.src_port, r.dst_port),
            (ip("192.0.2.10"), Some(17), Some(123), None)
        );
        // A flood to one port from random source ports.
        let mut s = Shapes::default();
        for i in 0..100u16 {
            s.record(ip("192.0.2.10"), 2, 17, 40_000 + i, 9000);
        }
        let r = s.rule(2).unwrap();
        assert_eq!((r.src_port, r.dst_port), (None, Some(9000)));
        // No port shared by half: protocol only.
        let mut s = Shapes::default();
        for i in 0..100u16 {
            s.record(ip("192.0.2.10"), 2, 17, 40_000 + i, 1000 + i);
        }
        let r = s.rule(2).unwrap();
        assert_eq!((r.proto, r.src_port, r.dst_port), (Some(17), None, None));
        // Samples leave the window.
        for _ in 0..WINDOW_SECS {
            s.tick();
        }
        assert_eq!(s.rule(2), None);
    }
}
