//! Allow- and blocklist files: one CIDR per line, `#` starts a comment, IPv4 and IPv6. A
//! malformed line is reported with its file and line number and skipped; the rest loads.

use std::path::Path;

use anyhow::{Context as _, Result};
use ipnet::IpNet;
use tracing::warn;

use crate::config::parse_cidr;

/// The prefixes in `text`, and one message per malformed line.
pub fn parse(text: &str, origin: &str) -> (Vec<IpNet>, Vec<String>) {
    let mut nets = Vec::new();
    let mut errors = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let entry = line.split('#').next().unwrap_or("").trim();
        if entry.is_empty() {
            continue;
        }
        match parse_cidr(entry) {
            Ok(net) => nets.push(net),
            Err(e) => errors.push(format!("{origin}:{}: {e:#}", i + 1)),
        }
    }
    (nets, errors)
}

/// Reads a list file, logging each malformed line.
pub fn load_file(path: &Path) -> Result<Vec<IpNet>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read list file {}", path.display()))?;
    let (nets, errors) = parse(&text, &path.display().to_string());
    for e in errors {
        warn!("{e}");
    }
    Ok(nets)
}

#[cfg(test)]
mod tests {
    #[test]
    fn comments_blanks_and_bad_lines() {
        let text =
            "# bad actors\n192.0.2.0/24\n\n2001:db8::/32  # v6 too\nnot-a-cidr\n198.51.100.7\n";
        let (nets, errors) = super::parse(text, "block.txt");
        let nets: Vec<String> = nets.iter().map(|n| n.to_string()).collect();
        assert_eq!(nets, ["192.0.2.0/24", "2001:db8::/32", "198.51.100.7/32"]);
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].starts_with("block.txt:5: malformed CIDR \"not-a-cidr\""),
            "{}",
            errors[0]
        );
    }
}
