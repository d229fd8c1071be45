//! `levee capture` in the daemon: one capture at a time. The program copies what the filter
//! matches, within its per-CPU budget; the controller drains the copies with the other rings
//! and hands them to the client's connection without ever waiting on it: a slow client loses
//! packets (counted), it never stalls the controller. The capture ends at its count, at its
//! duration, when the client leaves, or when levee stops; copying is off again at once.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use filter_common::abi::CaptureRecord;
use tokio::sync::mpsc::{Sender, error::TrySendError};
use tracing::{error, info};

use super::Controller;
use crate::{
    capture::{CaptureMsg, CaptureSpec, CaptureStarted, Skipped},
    dataplane::CaptureSkipped,
};

pub struct CaptureSession {
    to_client: Sender<CaptureMsg>,
    left: Option<u64>,
    until: Instant,
    /// CLOCK_REALTIME minus CLOCK_MONOTONIC, in ns: turns the program's times into dates.
    wall_offset_ns: i128,
    /// The program's counts when the capture began, per interface.
    skipped_before: Vec<CaptureSkipped>,
    slow_client: Vec<u64>,
    sent: u64,
}

fn clock_ns(clock: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and a timespec to write.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec)
}

impl Controller {
    /// Starts a capture that sends its packets to `to_client`.
    pub fn start_capture(
        &mut self,
        spec: &CaptureSpec,
        to_client: Sender<CaptureMsg>,
    ) -> Result<CaptureStarted> {
        spec.check()?;
        if self.capture.is_some() {
            bail!("a capture is already running: one at a time");
        }
        // Copies left from an earlier capture's last moments are not this capture's.
        for iface in &mut self.fleet.interfaces {
            while iface.capture.next().is_some() {}
        }
        let skipped_before = self
            .fleet
            .interfaces
            .iter()
            .map(|i| i.dp.capture_skipped())
            .collect::<Result<Vec<_>>>()?;
        self.fleet.start_capture(&spec.filter())?;
        let interfaces: Vec<String> = self
            .fleet
            .interfaces
            .iter()
            .map(|i| i.name.clone())
            .collect();
        info!(
            reasons = ?spec.reasons.iter().map(|r| r.name()).collect::<Vec<_>>(),
            actions = ?spec.actions.iter().map(|a| a.name()).collect::<Vec<_>>(),
            classes = ?spec.classes.iter().map(|c| c.name()).collect::<Vec<_>>(),
            source = ?spec.source,
            count = ?spec.count,
            duration_secs = spec.duration.as_secs(),
            budget = spec.budget,
            "capture started"
        );
        self.capture = Some(CaptureSession {
            to_client,
            left: spec.count,
            until: Instant::now() + spec.duration,
            wall_offset_ns: clock_ns(libc::CLOCK_REALTIME) - clock_ns(libc::CLOCK_MONOTONIC),
            slow_client: vec![0; skipped_before.len()],
            skipped_before,
            sent: 0,
        });
        Ok(CaptureStarted { interfaces })
    }

    /// Hands the copies to the client, and ends the capture when it is over.
    pub fn drain_capture(&mut self) {
        let Some(session) = &mut self.capture else {
            return;
        };
        let mut over = None;
        for (i, iface) in self.fleet.interfaces.iter_mut().enumerate() {
            while let Some(item) = iface.capture.next() {
                if session.left == Some(0)
                    || over.is_some()
                    || item.len() < size_of::<CaptureRecord>()
                {
                    continue;
                }
                // SAFETY: the length is checked above, and CaptureRecord is plain old data.
                let record: CaptureRecord =
                    unsafe { std::ptr::read_unaligned(item.as_ptr().cast()) };
                // One slot stays free for the end of the capture.
                if session.to_client.capacity() <= 1 {
                    session.slow_client[i] += 1;
                    continue;
                }
                let at = i128::from(record.timestamp_ns) + session.wall_offset_ns;
                let msg = CaptureMsg::Packet {
                    iface: i as u32,
                    at: Duration::from_nanos(at.max(0) as u64),
                    record: Box::new(record),
                };
                match session.to_client.try_send(msg) {
                    Ok(()) => {
                        session.sent += 1;
                        session.left = session.left.map(|n| n - 1);
                    }
                    Err(TrySendError::Full(_)) => session.slow_client[i] += 1,
                    Err(TrySendError::Closed(_)) => over = Some("the client left"),
                }
            }
        }
        let over = over.or(if session.left == Some(0) {
            Some("count reached")
        } else if Instant::now() >= session.until {
            Some("duration over")
        } else if session.to_client.is_closed() {
            Some("the client left")
        } else {
            None
        });
        if let Some(why) = over {
            self.end_capture(why);
        }
    }

    /// Turns copying off and tells the client why, with what was not copied.
    pub fn end_capture(&mut self, why: &str) {
        let Some(session) = self.capture.take() else {
            return;
        };
        if let Err(e) = self.fleet.stop_capture() {
            error!(
                "{e:#}: the program keeps copying, within its budget, into a ring nobody reads, \
                 until a capture is started and stopped again or levee restarts"
            );
        }
        let mut skipped = Vec::new();
        for (i, iface) in self.fleet.interfaces.iter_mut().enumerate() {
            while iface.capture.next().is_some() {}
            let now = iface.dp.capture_skipped().unwrap_or_default();
            let before = session.skipped_before[i];
            skipped.push(Skipped {
                budget: now.budget.saturating_sub(before.budget),
                ring_full: now.ring_full.saturating_sub(before.ring_full),
                slow_client: session.slow_client[i],
            });
        }
        info!(why, packets = session.sent, ?skipped, "capture ended");
        let _ = session.to_client.try_send(CaptureMsg::End {
            why: why.to_string(),
            skipped,
        });
    }
}
