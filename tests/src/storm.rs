//! A storm of real CLI processes against one daemon, as an operator's automation feeding a
//! blocklist in parallel runs them: each client adds its own addresses, removes some, and asks
//! for status, mode and the list in between. Shared by the storm test (every answer true) and
//! the bench (how long the answers take).

use std::{
    collections::BTreeSet,
    sync::Mutex,
    time::{Duration, Instant},
};

use crate::daemon::DaemonLab;

/// What the storm's commands showed.
#[derive(Default)]
pub struct Tally {
    pub commands: usize,
    /// Non-zero exits, with their first lines.
    pub errors: Vec<String>,
    /// Exit 0 without the answer the command must print.
    pub silent: Vec<String>,
    pub latencies: Vec<Duration>,
}

/// Client `i`'s own addresses: 10.200.i.0/24, so each client knows what it left.
fn address(client: usize, n: u32) -> String {
    format!("10.200.{client}.{}", n % 256)
}

/// Runs one command; true if it printed `want` (or anything, for an empty `want`) and
/// exited 0. Failures are tallied.
fn run(d: &DaemonLab, args: &[&str], want: &str, tally: &Mutex<Tally>) -> bool {
    let start = Instant::now();
    let out = d.cli(args);
    let took = start.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut t = tally.lock().unwrap();
    t.commands += 1;
    t.latencies.push(took);
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        t.errors.push(format!(
            "{args:?}: {:?} {}",
            out.status,
            err.lines().next().unwrap_or("")
        ));
        return false;
    }
    let answered = if want.is_empty() {
        !stdout.trim().is_empty()
    } else {
        stdout.trim_end() == want
    };
    if !answered {
        t.silent.push(format!("{args:?}: printed {stdout:?}"));
    }
    answered
}

/// One client's loop until `end`: adds its addresses, removes some, and asks for status,
/// mode and the list in between. Returns what it believes is blocked.
pub fn client(d: &DaemonLab, i: usize, end: Instant, tally: &Mutex<Tally>) -> BTreeSet<String> {
    let mut blocked = BTreeSet::new();
    let mut n = 0u32;
    let mut step = i;
    while Instant::now() < end {
        step += 1;
        match step % 6 {
            0 | 1 => {
                n += 1;
                let a = address(i, n);
                if run(d, &["block", "add", &a], &format!("blocked {a}/32"), tally) {
                    blocked.insert(a);
                }
            }
            2 => {
                if let Some(a) = blocked.iter().next().cloned()
                    && run(
                        d,
                        &["block", "del", &a],
                        &format!("unblocked {a}/32"),
                        tally,
                    )
                {
                    blocked.remove(&a);
                }
            }
            3 => {
                run(d, &["status"], "", tally);
            }
            4 => {
                run(d, &["mode"], "enforce", tally);
            }
            _ => {
                run(d, &["block", "list", "--json"], "", tally);
            }
        }
    }
    blocked
}

/// Runs `clients` clients at once until `for_` has passed; returns what they showed and the
/// addresses they believe blocked.
pub fn storm(d: &DaemonLab, clients: usize, for_: Duration) -> (Tally, BTreeSet<String>) {
    let tally = Mutex::new(Tally::default());
    let end = Instant::now() + for_;
    let believed: BTreeSet<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|i| {
                let tally = &tally;
                s.spawn(move || client(d, i, end, tally))
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("client"))
            .collect()
    });
    let mut t = tally.into_inner().expect("tally");
    t.latencies.sort();
    (t, believed)
}

impl Tally {
    /// The latency at percentile `q` (the latencies are sorted).
    pub fn at(&self, q: usize) -> Duration {
        let n = self.latencies.len();
        self.latencies
            .get((n * q / 100).min(n.saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    }
}
