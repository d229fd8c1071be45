//! The Prometheus endpoint: what `/metrics` serves, a bad `metrics` address refused at start,
//! and a real Prometheus server with the shipped alert rules seeing a lab flood.

use std::{
    thread::sleep,
    time::{Duration, Instant},
};

use levee_tests::{daemon::DaemonLab, flood::FloodLab, traffic::DATAGRAMS};

use crate::stderr;

/// Fetches `/metrics` from the daemon (it listens on loopback inside the protected namespace).
pub(crate) fn scrape(d: &DaemonLab) -> String {
    use std::io::{Read as _, Write as _};
    d.lab.protected.run(|| {
        let mut s = std::net::TcpStream::connect("127.0.0.1:9750").expect("connect to /metrics");
        s.write_all(b"GET /metrics HTTP/1.0\r\nHost: levee\r\n\r\n")
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    })
}

#[test]
fn metrics_endpoint_serves_counters_mode_lists_and_health() {
    let (mut d, _rx) = crate::blocking_second_client();
    sleep(Duration::from_millis(1200));
    let text = scrape(&d);
    assert!(
        text.starts_with("HTTP/1.0 200") || text.starts_with("HTTP/1.1 200"),
        "{text}"
    );
    let value = |prefix: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
    };
    let drops = value(
        "levee_packets_total{interface=\"lv0\",action=\"drop\",reason=\"blocklisted\",class=\"udp\"}",
    );
    assert_eq!(drops, DATAGRAMS as f64);
    assert_eq!(value("levee_mode{mode=\"enforce\"}"), 1.0);
    assert_eq!(value("levee_mode{mode=\"monitor\"}"), 0.0);
    assert_eq!(value("levee_blocklist_entries"), 1.0);
    assert_eq!(value("levee_under_attack{class=\"udp\"}"), 0.0);
    assert!(value("levee_controller_ticks_total") >= 1.0);
    assert!(value("levee_tracked_sources{interface=\"lv0\"}") >= 0.0);
    assert_eq!(
        value("levee_tracked_sources_capacity"),
        1_048_576.0 + 16_384.0
    );
    assert_eq!(value("levee_blocklist_capacity"), 1_048_576.0);
    assert!(value("levee_controller_last_tick_timestamp_seconds") > 1.7e9);
    assert_eq!(
        value("levee_events_lost_total{interface=\"lv0\",kind=\"offence\"}"),
        0.0
    );
    assert_eq!(value("levee_state_write_errors_total"), 0.0);
    // The lab's calm rate keeps the configured gate: 2^24 ns, 8 packets.
    assert_eq!(value("levee_sketch_gate_window_seconds"), 0.016777216);
    assert_eq!(value("levee_sketch_gate_threshold"), 8.0);
    assert_eq!(
        value("levee_sources_untracked_by_budget_total{interface=\"lv0\"}"),
        0.0
    );
    assert_eq!(
        value("levee_familiar_sightings_unrecorded_total{interface=\"lv0\"}"),
        0.0
    );
    assert_eq!(value("levee_strict_engaged"), 0.0);

    // A bad --metrics value is named in one line before anything is attached.
    assert!(d.stop());
    d.write_config("metrics = \"nowhere\"\nmode = \"enforce\"");
    let out = d.run_expecting_exit();
    let err = stderr(&out);
    assert!(
        err.contains("field metrics: malformed address \"nowhere\""),
        "{err}"
    );
    assert!(!d.xdp_attached());
}

/// A plain HTTP GET inside the protected namespace; returns the body.
fn http_get(d: &DaemonLab, addr: &str, path: &str) -> String {
    use std::io::{Read as _, Write as _};
    d.lab.protected.run(|| {
        let Ok(mut s) = std::net::TcpStream::connect(addr) else {
            return String::new();
        };
        let _ = s.write_all(format!("GET {path} HTTP/1.0\r\nHost: lab\r\n\r\n").as_bytes());
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out.split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default()
    })
}

/// Kills the Prometheus server when the test ends, whatever happens.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A real Prometheus server (Debian's) scrapes the daemon every second with the shipped alert
/// rules loaded; during a lab flood, the attack alert's expression returns the attack and
/// the alert fires.
#[test]
fn prometheus_sees_the_attack_during_a_lab_flood() {
    let lab = FloodLab::start(
        "mode = \"enforce\"\n[detection]\nrecovery_secs = 30\n[detection.floor_pps]\nudp = 5000",
    );
    let d = &lab.daemon;
    let rules = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/prometheus/levee-alerts.yml");
    let prom_dir = d.dir.join("prometheus");
    std::fs::create_dir_all(&prom_dir).unwrap();
    let prom_config = prom_dir.join("prometheus.yml");
    std::fs::write(
        &prom_config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\n\
             scrape_configs:\n  - job_name: levee\n    static_configs:\n      - targets: ['127.0.0.1:9750']\n",
            rules.canonicalize().unwrap().display()
        ),
    )
    .unwrap();
    let _prometheus = KillOnDrop(
        d.lab
            .protected
            .command("prometheus")
            .arg(format!("--config.file={}", prom_config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                prom_dir.join("data").display()
            ))
            .arg("--web.listen-address=127.0.0.1:9090")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(prom_dir.join("log")).unwrap())
            .spawn()
            .expect("start prometheus (Debian package prometheus)"),
    );
    let start = Instant::now();
    while !http_get(d, "127.0.0.1:9090", "/-/ready").contains("Ready") {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "prometheus not ready"
        );
        sleep(Duration::from_millis(200));
    }
    // The scrape works before the flood.
    let start = Instant::now();
    while !http_get(
        d,
        "127.0.0.1:9090",
        "/api/v1/query?query=up%7Bjob%3D%22levee%22%7D",
    )
    .contains("\"1\"]")
    {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "levee never scraped"
        );
        sleep(Duration::from_millis(300));
    }

    let (attack, alert) = lab.flood(|| {
        let start = Instant::now();
        // The attack alert's expression: max by (instance, class) (levee_under_attack) == 1
        let query = "/api/v1/query?query=max%20by%20(instance%2C%20class)%20(levee_under_attack)%20%3D%3D%201";
        let (mut attack, mut alert) = (String::new(), String::new());
        while start.elapsed() < Duration::from_secs(20) {
            if !attack.contains("\"udp\"") {
                attack = http_get(d, "127.0.0.1:9090", query);
            }
            alert = http_get(d, "127.0.0.1:9090", "/api/v1/alerts");
            if attack.contains("\"udp\"")
                && alert.contains("LeveeAttackStarted")
                && alert.contains("firing")
            {
                break;
            }
            sleep(Duration::from_millis(300));
        }
        (attack, alert)
    });
    assert!(
        attack.contains("\"class\":\"udp\""),
        "the alert expression returns the attack: {attack}"
    );
    assert!(
        alert.contains("LeveeAttackStarted") && alert.contains("\"state\":\"firing\""),
        "alert fires: {alert}"
    );
}
