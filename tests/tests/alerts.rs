//! The shipped Prometheus alert rules and Grafana dashboard: checked and unit-tested with
//! promtool, and every metric they use is one the daemon exports.

use std::{path::PathBuf, process::Command};

fn deploy(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(path)
}

fn promtool(args: &[&str]) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(deploy("prometheus"))
        .output()
        .expect("promtool (Debian package prometheus; cargo xtask setup installs it)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

#[test]
fn alert_rules_pass_promtool_check_and_their_unit_tests() {
    let check = promtool(&["check", "rules", "levee-alerts.yml"]);
    assert!(check.contains("SUCCESS: 7 rules found"), "{check}");
    let test = promtool(&["test", "rules", "levee-alerts.test.yml"]);
    assert!(test.contains("SUCCESS"), "{test}");
}

/// Metric names the daemon exports (see controller/src/metrics.rs).
const EXPORTED: [&str; 21] = [
    "levee_tracked_sources",
    "levee_tracked_sources_capacity",
    "levee_packets_total",
    "levee_bytes_total",
    "levee_mode",
    "levee_under_attack",
    "levee_attack_state",
    "levee_baseline_packets_per_second",
    "levee_detection_decisions_total",
    "levee_blocklist_entries",
    "levee_allowlist_entries",
    "levee_blocklist_capacity",
    "levee_allowlist_capacity",
    "levee_controller_ticks_total",
    "levee_controller_errors_total",
    "levee_controller_last_tick_timestamp_seconds",
    "levee_events_lost_total",
    "levee_state_write_errors_total",
    "levee_kernel_setting_changes_total",
    "levee_escalation_withdrawals_pending",
    "up",
];

fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut cur = String::new();
    for ch in expr.chars().chain(std::iter::once(' ')) {
        if ch.is_ascii_alphanumeric() || ch == '_' {
            cur.push(ch);
        } else {
            if cur.starts_with("levee_") {
                names.push(cur.clone());
            }
            cur.clear();
        }
    }
    names
}

#[test]
fn rules_and_dashboard_use_only_exported_metrics() {
    let rules = std::fs::read_to_string(deploy("prometheus/levee-alerts.yml")).unwrap();
    let dashboard = std::fs::read_to_string(deploy("grafana/levee-dashboard.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&dashboard).expect("dashboard is JSON");
    let panels = json["panels"].as_array().expect("panels");
    assert!(panels.len() >= 6, "a dashboard with the main views");
    let mut exprs: Vec<String> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("expr:").map(str::to_string))
        .collect();
    for p in panels {
        for t in p["targets"].as_array().into_iter().flatten() {
            exprs.push(t["expr"].as_str().expect("target expr").to_string());
        }
    }
    assert!(exprs.len() >= 10);
    for e in &exprs {
        for name in metric_names(e) {
            assert!(
                EXPORTED.contains(&name.as_str()),
                "{name} in {e:?} is not exported"
            );
        }
    }
}
