//! Flood signatures: found by the miner while a spread UDP flood or a SYN flood is on,
//! enforced by the program for a TTL renewed while they match, dropped when the attack ends. The operator may pin one
//! (kept until unpinned) or refuse one (never installed again; kept in the state file).
//!
//! - `mine`: the fingerprint of the attack's samples against what the service received calm.
//! - this module: the book of signatures in force, and their text form.

pub mod mine;

use std::{
    fmt,
    str::FromStr,
    time::{Duration, Instant, SystemTime},
};

use anyhow::{Context as _, Result, anyhow, bail};
use filter_common::signature::{FloodSignature, PAYLOAD_BYTES, SIGNATURE_SLOTS, field};
use serde::Serialize;

use mine::Candidate;

/// How long a signature stays in force without matching.
pub const SIGNATURE_TTL: Duration = Duration::from_secs(10);

/// A signature in force.
#[derive(Clone, Debug)]
pub struct Active {
    pub id: u32,
    pub signature: FloodSignature,
    pub found: SystemTime,
    pub expires: Instant,
    pub pinned: bool,
    /// Packets it dropped, and the slot's counter when it was last read.
    pub hits: u64,
    pub slot_hits: u64,
    pub attack_cover: f64,
    pub calm_cover: f64,
    /// When its renewal was last logged.
    pub logged: Instant,
}

/// What happened to the book in one step, for the log.
#[derive(Debug, PartialEq)]
pub enum Change {
    Found(u32),
    Renewed(u32),
    Dropped(u32, &'static str),
}

/// The signatures in force, in slot order, and the refused fingerprints.
#[derive(Debug, Default)]
pub struct Book {
    pub active: Vec<Active>,
    /// Fingerprints (id 0) never to be installed again.
    pub refused: Vec<FloodSignature>,
    next_id: u32,
}

/// A signature's fingerprint: the signature without its number.
pub fn fingerprint(s: &FloodSignature) -> FloodSignature {
    FloodSignature { id: 0, ..*s }
}

impl Book {
    /// The table the program holds, in slot order.
    pub fn table(&self) -> Vec<FloodSignature> {
        self.active.iter().map(|a| a.signature).collect()
    }

    /// Reads the slots' drop counters: a signature that dropped since the last read is
    /// renewed. `hits` is per slot, as the program counts.
    pub fn renew(&mut self, hits: &[u64], now: Instant) -> Vec<Change> {
        let mut changes = Vec::new();
        for (a, &h) in self.active.iter_mut().zip(hits) {
            if h > a.slot_hits {
                a.hits += h - a.slot_hits;
                a.expires = now + SIGNATURE_TTL;
                if now.duration_since(a.logged) >= SIGNATURE_TTL {
                    a.logged = now;
                    changes.push(Change::Renewed(a.id));
                }
            }
            a.slot_hits = h;
        }
        changes
    }

    /// Drops what is over: unpinned signatures once their attack ended (`attacked`, by IP
    /// protocol) or their TTL ran out.
    pub fn expire(&mut self, attacked: impl Fn(u8) -> bool, now: Instant) -> Vec<Change> {
        let mut changes = Vec::new();
        self.active.retain(|a| {
            let why = match () {
                _ if a.pinned => return true,
                _ if !attacked(a.signature.facts.proto) => "the attack ended",
                _ if now >= a.expires => "it stopped matching",
                _ => return true,
            };
            changes.push(Change::Dropped(a.id, why));
            false
        });
        changes
    }

    /// Takes a candidate of the miner, unless it was refused or the table is full.
    pub fn add(&mut self, c: &Candidate, now: Instant) -> Option<Change> {
        if self.refused.contains(&fingerprint(&c.signature)) {
            return None;
        }
        let covers = (c.attack_cover, c.calm_cover);
        self.insert(c.signature, covers, false, now)
            .map(Change::Found)
    }

    /// Puts back a signature the operator had pinned (from the state file); its number is
    /// new. None if the table is full.
    pub fn add_pinned(
        &mut self,
        signature: FloodSignature,
        covers: (f64, f64),
        now: Instant,
    ) -> Option<u32> {
        self.insert(signature, covers, true, now)
    }

    fn insert(
        &mut self,
        signature: FloodSignature,
        (attack_cover, calm_cover): (f64, f64),
        pinned: bool,
        now: Instant,
    ) -> Option<u32> {
        if self.active.len() >= SIGNATURE_SLOTS as usize {
            return None;
        }
        self.next_id += 1;
        let id = self.next_id;
        self.active.push(Active {
            id,
            signature: FloodSignature { id, ..signature },
            found: SystemTime::now(),
            expires: now + SIGNATURE_TTL,
            pinned,
            hits: 0,
            slot_hits: 0,
            attack_cover,
            calm_cover,
            logged: now,
        });
        Some(id)
    }

    /// Slot counters start again wherever the table was rewritten: `hits` as read right
    /// after the write.
    pub fn rebase(&mut self, hits: &[u64]) {
        for (a, &h) in self.active.iter_mut().zip(hits) {
            a.slot_hits = h;
        }
    }

    pub fn get(&self, id: u32) -> Result<&Active> {
        self.active
            .iter()
            .find(|a| a.id == id)
            .ok_or_else(|| anyhow!("no flood signature #{id} in force (see `levee signatures`)"))
    }

    pub fn view(&self, now: Instant) -> Vec<SignatureView> {
        self.active
            .iter()
            .map(|a| SignatureView {
                id: a.id,
                signature: Text(a.signature).to_string(),
                pinned: a.pinned,
                drops: a.hits,
                ttl_secs: (!a.pinned).then(|| a.expires.saturating_duration_since(now).as_secs()),
                found_secs_ago: a.found.elapsed().map_or(0, |d| d.as_secs()),
                attack_cover: a.attack_cover,
                calm_cover: a.calm_cover,
            })
            .collect()
    }
}

/// A signature as `levee signatures` and `levee status` show it.
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq)]
pub struct SignatureView {
    pub id: u32,
    pub signature: String,
    pub pinned: bool,
    pub drops: u64,
    /// Time left; none while pinned.
    pub ttl_secs: Option<u64>,
    pub found_secs_ago: u64,
    /// Shares of the attack's and of the service's calm samples it matched when found.
    pub attack_cover: f64,
    pub calm_cover: f64,
}

/// The text form of a signature (its fingerprint): `udp dport 5004 sport 40000 len 92
/// payload 41414141........` (IP length, TTL, IPv4 id, payload bytes in hex with `..` for a
/// byte not looked at); a SYN's is `tcp ...`, with `bytes` for the TCP header's bytes 8 to 15
/// (ACK number, header length, flags, window). Read back from the state file's refusals.
pub struct Text(pub FloodSignature);

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.0;
        let p = &s.facts;
        let bytes = match p.proto {
            17 => "payload",
            _ => "bytes",
        };
        match p.proto {
            17 => write!(f, "udp")?,
            6 => write!(f, "tcp")?,
            n => write!(f, "proto {n}")?,
        }
        let pairs: [(u32, &str, u16); 5] = [
            (field::DST_PORT, "dport", p.dst_port),
            (field::SRC_PORT, "sport", p.src_port),
            (field::IP_LEN, "len", p.ip_len),
            (field::TTL, "ttl", p.ttl as u16),
            (field::IP_ID, "id", p.ip_id),
        ];
        for (bit, name, v) in pairs {
            if s.fields & bit != 0 {
                write!(f, " {name} {v}")?;
            }
        }
        if s.fields & field::PAYLOAD != 0 {
            write!(f, " {bytes} ")?;
            for i in 0..PAYLOAD_BYTES {
                if s.payload_mask[i] == 0xff {
                    write!(f, "{:02x}", p.payload[i])?;
                } else {
                    write!(f, "..")?;
                }
            }
        }
        Ok(())
    }
}

impl FromStr for Text {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> Result<Text> {
        let mut s = FloodSignature::default();
        let mut words = text.split_whitespace();
        match words.next() {
            Some("udp") => s.facts.proto = 17,
            Some("tcp") => s.facts.proto = 6,
            other => bail!("flood signature {text:?}: starts with {other:?}, not udp or tcp"),
        }
        while let Some(name) = words.next() {
            let value = words
                .next()
                .with_context(|| format!("flood signature {text:?}: {name} has no value"))?;
            let number = || -> Result<u16> {
                value
                    .parse()
                    .with_context(|| format!("flood signature {text:?}: {name} {value:?}"))
            };
            let bit = match name {
                "dport" => {
                    s.facts.dst_port = number()?;
                    field::DST_PORT
                }
                "sport" => {
                    s.facts.src_port = number()?;
                    field::SRC_PORT
                }
                "len" => {
                    s.facts.ip_len = number()?;
                    field::IP_LEN
                }
                "ttl" => {
                    s.facts.ttl = u8::try_from(number()?)?;
                    field::TTL
                }
                "id" => {
                    s.facts.ip_id = number()?;
                    field::IP_ID
                }
                "payload" | "bytes" if value.len() == 2 * PAYLOAD_BYTES => {
                    for i in 0..PAYLOAD_BYTES {
                        let byte = &value[2 * i..2 * i + 2];
                        if byte != ".." {
                            s.facts.payload[i] =
                                u8::from_str_radix(byte, 16).with_context(|| {
                                    format!("flood signature {text:?}: payload byte {byte:?}")
                                })?;
                            s.payload_mask[i] = 0xff;
                        }
                    }
                    field::PAYLOAD
                }
                _ => bail!("flood signature {text:?}: unknown field {name:?}"),
            };
            s.fields |= bit;
        }
        if s.fields & field::DST_PORT == 0 {
            bail!("flood signature {text:?}: no dport");
        }
        Ok(Text(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_form_reads_back() {
        for text in [
            "udp dport 5004 sport 40000",
            "udp dport 5004 len 92 ttl 64 id 0 payload 4141....41414141",
            "tcp dport 8000 len 40 bytes ........50020200",
        ] {
            let sig: Text = text.parse().unwrap();
            assert_eq!(Text(sig.0).to_string(), text);
        }
        for (bad, want) in [
            ("icmp dport 80", "not udp or tcp"),
            ("udp sport 1", "no dport"),
            ("udp dport 70000", "dport"),
            ("udp dport 1 color red", "unknown field"),
            ("udp dport 1 payload 41", "unknown field"),
        ] {
            let e = format!("{:#}", bad.parse::<Text>().err().unwrap());
            assert!(e.contains(want), "{bad}: {e}");
        }
    }

    fn candidate(sport: u16) -> Candidate {
        let sig: Text = format!("udp dport 5004 sport {sport}").parse().unwrap();
        Candidate {
            signature: sig.0,
            attack_cover: 1.0,
            calm_cover: 0.0,
            attack_samples: 100,
            calm_samples: 100,
        }
    }

    #[test]
    fn a_signature_lives_while_it_matches_and_its_attack_lasts() {
        let t0 = Instant::now();
        let mut book = Book::default();
        assert_eq!(book.add(&candidate(1), t0), Some(Change::Found(1)));
        // Matching renews it past its first TTL.
        let t1 = t0 + SIGNATURE_TTL - Duration::from_secs(1);
        assert_eq!(book.renew(&[5], t1), vec![]);
        assert_eq!(book.expire(|_| true, t0 + SIGNATURE_TTL), vec![]);
        assert_eq!(book.active[0].hits, 5);
        // Silent for a TTL: dropped.
        assert_eq!(
            book.expire(|_| true, t1 + SIGNATURE_TTL),
            vec![Change::Dropped(1, "it stopped matching")]
        );
        // The attack's end drops it at once, unless pinned.
        book.add(&candidate(2), t0);
        book.add(&candidate(3), t0);
        book.active[1].pinned = true;
        assert_eq!(
            book.expire(|_| false, t0),
            vec![Change::Dropped(2, "the attack ended")]
        );
        assert_eq!(book.table()[0].id, 3);
        // A refused fingerprint is never taken again.
        book.refused.push(fingerprint(&candidate(4).signature));
        assert_eq!(book.add(&candidate(4), t0), None);
    }
}
