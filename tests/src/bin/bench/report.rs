//! The figures of a run and their provenance, written to `target/bench/latest.md`.

use super::*;

/// The figures of a run, printed as they come and written with the run's provenance (date,
/// commit, machine, command) to `target/bench/latest.md`, whose content docs/performance.md shows.
pub(super) struct Report {
    lines: Vec<String>,
}

impl Report {
    /// Where the figures come from: commit, date, machine, generator, command.
    pub(super) fn provenance(args: &Args) -> Result<Vec<String>> {
        let sh = |cmd: &str, argv: &[&str]| -> String {
            std::process::Command::new(cmd)
                .args(argv)
                .output()
                .ok()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                .unwrap_or_default()
        };
        let commit = sh("git", &["rev-parse", "--short=12", "HEAD"]);
        let dirty = !sh("git", &["status", "--porcelain", "--untracked-files=no"]).is_empty();
        let cpu = std::fs::read_to_string("/proc/cpuinfo")?
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name")
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
            })
            .unwrap_or_else(|| "unknown CPU".into());
        let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
        let mut r = Vec::new();
        r.push(format!(
            "commit: {commit}{}",
            if dirty {
                " (with uncommitted changes)"
            } else {
                ""
            }
        ));
        r.push(format!(
            "date: {}",
            sh("date", &["-u", "+%Y-%m-%d %H:%M UTC"])
        ));
        r.push(format!(
            "machine: {cpu}, {cpus} CPUs, Linux {}",
            sh("uname", &["-r"])
        ));
        // The floods' generator: figures made with different ones are not comparable.
        let (method, why) = Method::chosen();
        r.push(format!("generator: {method} ({why})"));
        r.push(format!(
            "command: cargo xtask bench{only} (bench --repeat {} --runs {}{only})",
            args.repeat,
            args.runs,
            only = if args.control_only {
                " --control-only"
            } else {
                ""
            }
        ));
        Ok(r)
    }

    pub(super) fn new(args: &Args) -> Result<Report> {
        let mut r = Report { lines: Vec::new() };
        for l in Report::provenance(args)? {
            r.line(&l);
        }
        r.line("");
        Ok(r)
    }

    pub(super) fn line(&mut self, text: &str) {
        let text = text.trim_end();
        println!("{text}");
        self.lines.push(text.to_string());
    }

    pub(super) fn save(&self) -> Result<()> {
        let dir = std::path::Path::new("target/bench");
        std::fs::create_dir_all(dir)?;
        let path = dir.join("latest.md");
        std::fs::write(&path, self.lines.join("\n") + "\n")?;
        println!("(written to {})", path.display());
        Ok(())
    }
}
