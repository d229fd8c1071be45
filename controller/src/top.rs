//! Top talkers from sampled packet headers: the program sends one header in N to the ring
//! buffer; this keeps per-second tallies of the last few seconds and ranks sources by
//! estimated packet rate. No walk over the source table is ever needed.

use std::{
    collections::{HashMap, VecDeque},
    net::IpAddr,
};

use filter_common::abi::{Action, Class};

use crate::api::views::TalkerView;

/// Seconds of history the ranking covers.
pub const WINDOW_SECS: usize = 10;

#[derive(Clone, Copy, Debug, Default)]
struct Tally {
    packets: u64,
    bytes: u64,
    dropped: u64,
}

/// Sliding window of per-second tallies by (source, class).
#[derive(Debug, Default)]
pub struct TopTalkers {
    seconds: VecDeque<HashMap<(IpAddr, u32), Tally>>,
}

impl TopTalkers {
    /// Starts a new second, dropping the oldest beyond the window.
    pub fn tick(&mut self) {
        self.seconds.push_back(HashMap::new());
        while self.seconds.len() > WINDOW_SECS {
            self.seconds.pop_front();
        }
    }

    /// Counts one sampled header, taken at a rate of one in `every` (so it stands for
    /// `every` packets).
    pub fn record(&mut self, source: IpAddr, class: u32, action: u32, bytes: u32, every: u32) {
        let every = u64::from(every.max(1));
        if self.seconds.is_empty() {
            self.tick();
        }
        let t = self
            .seconds
            .back_mut()
            .expect("a current second")
            .entry((source, class))
            .or_default();
        t.packets += every;
        t.bytes += u64::from(bytes) * every;
        if action != Action::Pass as u32 {
            t.dropped += every;
        }
    }

    /// The `n` heaviest (source, class) pairs.
    pub fn top(&self, n: usize) -> Vec<TalkerView> {
        let mut sum: HashMap<(IpAddr, u32), Tally> = HashMap::new();
        for second in &self.seconds {
            for (k, t) in second {
                let s = sum.entry(*k).or_default();
                s.packets += t.packets;
                s.bytes += t.bytes;
                s.dropped += t.dropped;
            }
        }
        let secs = self.seconds.len().max(1) as u64;
        let mut ranked: Vec<_> = sum.into_iter().collect();
        ranked.sort_by_key(|(_, t)| std::cmp::Reverse(t.packets));
        ranked
            .into_iter()
            .take(n)
            .map(|((source, class), t)| TalkerView {
                source,
                class: Class::ALL
                    .get(class as usize)
                    .map_or("?", |c| c.name())
                    .to_string(),
                pps: t.packets / secs,
                bits_per_sec: t.bytes * 8 / secs,
                dropped_pct: (t.dropped * 100 / t.packets.max(1)) as u8,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_by_estimated_rate_over_the_window() {
        let mut t = TopTalkers::default();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "2001:db8::1".parse().unwrap();
        t.tick();
        for _ in 0..30 {
            t.record(a, Class::Udp as u32, Action::Drop as u32, 100, 100);
        }
        t.record(b, Class::TcpSyn as u32, Action::Pass as u32, 60, 100);
        t.tick();
        for _ in 0..10 {
            t.record(a, Class::Udp as u32, Action::Pass as u32, 100, 100);
        }
        let top = t.top(10);
        assert_eq!(top.len(), 2);
        // 40 samples taken at one in 100, over 2 s.
        assert_eq!(
            top[0],
            TalkerView {
                source: a,
                class: "udp".into(),
                pps: 2000,
                bits_per_sec: 1_600_000,
                dropped_pct: 75
            }
        );
        assert_eq!((top[1].class.as_str(), top[1].pps), ("tcp_syn", 50));
        assert_eq!(t.top(1).len(), 1);
        for _ in 0..WINDOW_SECS {
            t.tick();
        }
        assert!(t.top(10).is_empty(), "old seconds leave the window");
    }
}
