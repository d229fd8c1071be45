//! `levee capture`: what the operator asks to see ([`CaptureSpec`], checked again by the
//! daemon), the program's filter made from it, and the pcapng stream the daemon writes (one
//! interface block per protected interface, each packet with its verdict as a comment, and at
//! the end what the kernel's budget skipped, as interface statistics).

use std::{borrow::Cow, time::Duration};

use anyhow::{Result, bail};
use filter_common::abi::{
    Action, CAPTURE_SNAPLEN_MAX, CaptureFilter, CaptureRecord, Class, Reason,
};
use ipnet::IpNet;
use pcap_file::{
    DataLink, Endianness,
    pcapng::{
        Block, PcapNgWriter,
        blocks::{
            enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption},
            interface_description::{InterfaceDescriptionBlock, InterfaceDescriptionOption},
            interface_statistics::{InterfaceStatisticsBlock, InterfaceStatisticsOption},
        },
    },
};
use serde::{Deserialize, Serialize};

use crate::dataplane::abi_address;

pub const DEFAULT_SNAPLEN: u32 = 128;
pub const DEFAULT_BUDGET: u32 = 1000;
/// The CAPTURE ring holds 0.7 s of two CPUs at this rate (see `CAPTURE_BYTES`).
pub const MAX_BUDGET: u32 = 10_000;
pub const DEFAULT_DURATION: Duration = Duration::from_secs(30);
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

/// What to capture. Empty lists mean any.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaptureSpec {
    #[serde(default, with = "names::reasons")]
    pub reasons: Vec<Reason>,
    #[serde(default, with = "names::actions")]
    pub actions: Vec<Action>,
    #[serde(default, with = "names::classes")]
    pub classes: Vec<Class>,
    #[serde(default, with = "crate::api::wire::opt_cidr")]
    pub source: Option<IpNet>,
    /// Packets written at most; None: until the duration ends.
    #[serde(default)]
    pub count: Option<u64>,
    #[serde(rename = "duration_secs", with = "crate::api::wire::secs")]
    pub duration: Duration,
    pub snaplen: u32,
    /// Packets copied a second on each CPU, at most.
    pub budget: u32,
}

impl Default for CaptureSpec {
    fn default() -> Self {
        CaptureSpec {
            reasons: Vec::new(),
            actions: Vec::new(),
            classes: Vec::new(),
            source: None,
            count: None,
            duration: DEFAULT_DURATION,
            snaplen: DEFAULT_SNAPLEN,
            budget: DEFAULT_BUDGET,
        }
    }
}

impl CaptureSpec {
    /// Refuses what the program cannot do or what would load the host, naming the option.
    pub fn check(&self) -> Result<()> {
        if !(1..=CAPTURE_SNAPLEN_MAX as u32).contains(&self.snaplen) {
            bail!(
                "--snaplen {}: expected 1 to {CAPTURE_SNAPLEN_MAX} bytes",
                self.snaplen
            );
        }
        if !(1..=MAX_BUDGET).contains(&self.budget) {
            bail!(
                "--budget {}: expected 1 to {MAX_BUDGET} packets a second per CPU",
                self.budget
            );
        }
        if self.count == Some(0) {
            bail!("--count 0: expected at least 1 packet");
        }
        if self.duration.subsec_nanos() != 0 {
            bail!(
                "--duration {}: expected whole seconds, 1s to 24h",
                humantime::format_duration(self.duration)
            );
        }
        if self.duration.is_zero() || self.duration > MAX_DURATION {
            bail!(
                "--duration {}: expected 1s to 24h",
                humantime::format_duration(self.duration)
            );
        }
        Ok(())
    }

    /// The program's filter.
    pub fn filter(&self) -> CaptureFilter {
        fn mask<T: Copy>(chosen: &[T], all: &[T], bit: impl Fn(T) -> u32) -> u64 {
            let set = if chosen.is_empty() { all } else { chosen };
            set.iter().fold(0, |m, v| m | 1 << bit(*v))
        }
        let mut f = CaptureFilter {
            reasons: mask(&self.reasons, &Reason::ALL, |r| r as u32),
            actions: mask(&self.actions, &Action::ALL, |a| a as u32) as u8,
            classes: mask(&self.classes, &Class::ALL, |c| c as u32) as u16,
            snaplen: self.snaplen,
            per_second: self.budget,
            ..CaptureFilter::default()
        };
        if let Some(net) = self.source {
            f.family = if net.addr().is_ipv6() { 6 } else { 4 };
            f.src = abi_address(net.addr());
            f.src_mask = abi_address(net.netmask());
        }
        f
    }
}

/// The daemon's first answer to a capture: where it copies from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureStarted {
    pub interfaces: Vec<String>,
}

/// What the daemon's capture sends its client's connection.
#[derive(Debug)]
pub enum CaptureMsg {
    /// A copied packet, from the interface at this index of [`CaptureStarted::interfaces`].
    Packet {
        iface: u32,
        /// Wall-clock time of the copy.
        at: Duration,
        record: Box<CaptureRecord>,
    },
    /// The capture is over; per interface what was not copied.
    End { why: String, skipped: Vec<Skipped> },
}

/// Matching packets of one interface that are not in the capture.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Skipped {
    /// Over the kernel's per-second budget.
    pub budget: u64,
    /// Lost to a full ring.
    pub ring_full: u64,
    /// Dropped by the daemon: the client read too slowly.
    pub slow_client: u64,
}

/// The pcapng stream, block by block, into a buffer the caller sends on.
pub struct PcapNgStream {
    writer: PcapNgWriter<Vec<u8>>,
}

impl PcapNgStream {
    /// The section header and one interface block per interface (nanosecond timestamps).
    pub fn new(interfaces: &[String], snaplen: u32) -> Result<PcapNgStream> {
        // Big-endian: pcap-file 2.0 writes the statistics block's timestamp as one u64,
        // which is the high word first (as pcapng wants) only in big-endian.
        let mut writer = PcapNgWriter::with_endianness(Vec::new(), Endianness::Big)?;
        for name in interfaces {
            writer.write_pcapng_block(InterfaceDescriptionBlock {
                linktype: DataLink::ETHERNET,
                snaplen,
                options: vec![
                    InterfaceDescriptionOption::IfName(Cow::Owned(name.clone())),
                    InterfaceDescriptionOption::IfTsResol(9),
                ],
            })?;
        }
        Ok(PcapNgStream { writer })
    }

    pub fn packet(&mut self, iface: u32, at: Duration, record: &CaptureRecord) -> Result<()> {
        let caplen = (record.caplen as usize).min(CAPTURE_SNAPLEN_MAX);
        self.writer.write_pcapng_block(EnhancedPacketBlock {
            interface_id: iface,
            timestamp: at,
            original_len: record.len,
            data: Cow::Borrowed(&record.data[..caplen]),
            options: vec![EnhancedPacketOption::Comment(Cow::Owned(verdict_comment(
                record,
            )))],
        })?;
        Ok(())
    }

    /// Per interface, the packets the capture matched but did not copy.
    pub fn end(&mut self, at: Duration, why: &str, skipped: &[Skipped]) -> Result<()> {
        for (i, s) in skipped.iter().enumerate() {
            self.writer
                .write_block(&Block::InterfaceStatistics(InterfaceStatisticsBlock {
                    interface_id: i as u32,
                    timestamp: at.as_nanos() as u64,
                    options: vec![
                        InterfaceStatisticsOption::Comment(Cow::Owned(format!(
                            "levee: {why}; not copied: {} over the budget, {} to a full ring, {} for a slow reader",
                            s.budget, s.ring_full, s.slow_client
                        ))),
                        // "Dropped by the interface" as a capture tool reports it: matched,
                        // not copied (by the kernel's budget or a full ring).
                        InterfaceStatisticsOption::IsbIfDrop(s.budget + s.ring_full),
                        InterfaceStatisticsOption::IsbOsDrop(s.slow_client),
                    ],
                }))?;
        }
        Ok(())
    }

    /// The bytes written since the last call.
    pub fn take(&mut self) -> Vec<u8> {
        std::mem::take(self.writer.get_mut())
    }
}

/// `levee: drop source_penalty udp`, as Wireshark shows it under the packet.
pub fn verdict_comment(record: &CaptureRecord) -> String {
    let name = |all: &[&'static str], i: u8| all.get(usize::from(i)).copied().unwrap_or("?");
    let actions: Vec<_> = Action::ALL.iter().map(|a| a.name()).collect();
    let reasons: Vec<_> = Reason::ALL.iter().map(|r| r.name()).collect();
    let classes: Vec<_> = Class::ALL.iter().map(|c| c.name()).collect();
    format!(
        "levee: {} {} {}",
        name(&actions, record.action),
        name(&reasons, record.reason),
        name(&classes, record.class)
    )
}

/// Parses an action name.
pub fn parse_action(s: &str) -> Result<Action> {
    Action::ALL
        .into_iter()
        .find(|a| a.name() == s)
        .ok_or_else(|| anyhow::anyhow!("unknown action {s:?}: expected pass, drop or would_drop"))
}

/// Parses a reason name.
pub fn parse_reason(s: &str) -> Result<Reason> {
    Reason::ALL
        .into_iter()
        .find(|r| r.name() == s)
        .ok_or_else(|| {
            let names: Vec<_> = Reason::ALL.iter().map(|r| r.name()).collect();
            anyhow::anyhow!("unknown reason {s:?}: expected one of {}", names.join(", "))
        })
}

/// Lists of names in JSON, each checked by its parser.
mod names {
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    fn ser<S: Serializer, T: Copy>(
        v: &[T],
        name: fn(T) -> &'static str,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|x| name(*x)))
    }

    fn de<'de, D: Deserializer<'de>, T>(
        d: D,
        parse: fn(&str) -> anyhow::Result<T>,
    ) -> Result<Vec<T>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|s| parse(s).map_err(|e| D::Error::custom(format!("{e:#}"))))
            .collect()
    }

    macro_rules! list {
        ($module:ident, $t:ty, $parse:path) => {
            pub mod $module {
                use super::*;
                pub fn serialize<S: Serializer>(v: &[$t], s: S) -> Result<S::Ok, S::Error> {
                    ser(v, <$t>::name, s)
                }
                pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<$t>, D::Error> {
                    de(d, $parse)
                }
            }
        };
    }
    list!(
        reasons,
        filter_common::abi::Reason,
        crate::capture::parse_reason
    );
    list!(
        actions,
        filter_common::abi::Action,
        crate::capture::parse_action
    );
    list!(
        classes,
        filter_common::abi::Class,
        crate::config::parse_class
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_is_any_unless_narrowed() {
        let any = CaptureSpec::default().filter();
        assert_eq!(any.reasons, (1u64 << Reason::COUNT) - 1);
        assert_eq!(any.actions, 0b111);
        assert_eq!(any.classes, 0b11111);
        assert_eq!(any.family, 0);
        let narrow = CaptureSpec {
            reasons: vec![Reason::SourcePenalty],
            actions: vec![Action::Drop],
            source: Some("198.51.100.0/24".parse().unwrap()),
            ..CaptureSpec::default()
        }
        .filter();
        assert_eq!(narrow.reasons, 1 << Reason::SourcePenalty as u32);
        assert_eq!(narrow.actions, 1 << Action::Drop as u32);
        assert_eq!(narrow.family, 4);
        assert_eq!(narrow.src[..4], [198, 51, 100, 0]);
        assert_eq!(narrow.src_mask[..4], [255, 255, 255, 0]);
    }

    #[test]
    fn bad_options_are_named() {
        let bad = |spec: CaptureSpec, needle: &str| {
            let e = format!("{:#}", spec.check().unwrap_err());
            assert!(e.contains(needle), "{e}");
        };
        bad(
            CaptureSpec {
                snaplen: 0,
                ..Default::default()
            },
            "--snaplen 0",
        );
        bad(
            CaptureSpec {
                snaplen: 257,
                ..Default::default()
            },
            "--snaplen 257",
        );
        bad(
            CaptureSpec {
                budget: 0,
                ..Default::default()
            },
            "--budget 0",
        );
        bad(
            CaptureSpec {
                count: Some(0),
                ..Default::default()
            },
            "--count 0",
        );
        bad(
            CaptureSpec {
                duration: Duration::ZERO,
                ..Default::default()
            },
            "--duration",
        );
        assert!(CaptureSpec::default().check().is_ok());
        let json = r#"{"reasons":["nope"],"duration_secs":1,"snaplen":1,"budget":1}"#;
        let e = serde_json::from_str::<CaptureSpec>(json)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown reason \"nope\""), "{e}");
    }
}
