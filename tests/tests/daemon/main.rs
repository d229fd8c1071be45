//! Daemon tests: the daemon and CLI as users run them: `levee run` on the protected side of a
//! lab, the CLI from outside, real traffic from the client side. One module per feature, all in
//! one test binary: cargo links every file under `tests/` on its own, and one binary keeps the
//! helpers below in one place.

mod capture;
mod cli;
mod cookies;
mod crowd;
mod detection;
mod escalation;
mod explain;
mod failure;
mod faults;
mod fleet;
mod fragments;
mod gate;
mod interfaces;
mod kernel_settings;
mod line_rate;
mod lists;
mod metrics;
mod modes;
mod package;
mod received;
mod relay;
mod reload;
mod restart;
mod service;
mod services;
mod spoofing;
mod storm;
mod stream;
mod strict;
mod trigger;

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

/// A daemon enforcing a config that blocks the second lab client, and a receiver the first
/// client's path is warmed up to; the block is checked to hold.
fn blocking_second_client() -> (DaemonLab, UdpSocket) {
    use levee_tests::{netns::CLIENT_V4, traffic::warm_up};
    let mut d = DaemonLab::new();
    d.write_config(&format!(
        "mode = \"enforce\"\n[lists]\nblock = [\"{}\"]",
        CLIENT_V4[1]
    ));
    d.start();
    let rx = receiver(&d);
    warm_up(&d.lab.client, CLIENT_V4[0], &rx);
    assert_eq!(
        delivered(&d, &rx, CLIENT_V4[1]),
        0,
        "the config's block holds"
    );
    (d, rx)
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).trim().to_string()
}
