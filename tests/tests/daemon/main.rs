//! Daemon tests: the daemon and CLI as users run them: `levee run` on the protected side of a
//! lab, the CLI from outside, real traffic from the client side. One module per feature, all in
//! one test binary: cargo links every file under `tests/` on its own, and one binary keeps the
//! helpers below in one place.

mod cli;
mod detection;
mod failure;
mod faults;
mod interfaces;
mod lists;
mod metrics;
mod modes;
mod reload;
mod restart;

use std::{net::UdpSocket, thread::sleep, time::Duration};

use levee_tests::{
    daemon::DaemonLab,
    netns::PROTECTED_V4,
    traffic::{addr, drain, send_udp, udp_receiver},
};

/// A UDP receiver on the protected side.
fn receiver(d: &DaemonLab) -> UdpSocket {
    udp_receiver(&d.lab.protected, PROTECTED_V4, 9000)
}

/// Sends a burst from `src` and returns how many datagrams arrived from it.
fn delivered(d: &DaemonLab, rx: &UdpSocket, src: &str) -> u64 {
    send_udp(&d.lab, src, addr(PROTECTED_V4, 9000));
    sleep(Duration::from_millis(100));
    drain(rx).get(&src.parse().unwrap()).copied().unwrap_or(0)
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).trim().to_string()
}
