//! `levee capture`: asks the daemon for a capture and copies its pcapng stream to the file
//! or standard output block by block (flushed at once, so `| tcpdump -r -` shows packets as
//! they come); at the end, says on standard error what was written and what was not copied.

use std::{
    fs::File,
    io::{self, BufWriter, Write},
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context as _, Result, anyhow, bail};
use clap::Args;
use filter_common::abi::Class;
use ipnet::IpNet;
use pcap_file::pcapng::{
    Block, PcapNgReader, PcapNgWriter, blocks::interface_statistics::InterfaceStatisticsOption,
};

use crate::{
    api::{self, Request},
    capture::{CaptureSpec, CaptureStarted},
};

/// `levee capture`'s arguments.
#[derive(Args, Debug)]
pub struct CaptureArgs {
    /// Only packets with this reason (repeat for several), e.g. source_penalty.
    #[arg(long = "reason", value_name = "REASON", value_parser = super::reason)]
    pub reasons: Vec<filter_common::abi::Reason>,
    /// Only packets from this prefix.
    #[arg(long, value_name = "CIDR", value_parser = super::cidr)]
    pub source: Option<IpNet>,
    /// Only packets of this class (repeat for several): tcp_syn, tcp_other, udp, icmp, other.
    #[arg(long = "class", value_name = "CLASS", value_parser = super::class)]
    pub classes: Vec<Class>,
    /// Only packets given this action (repeat for several): drop, pass, would_drop.
    #[arg(long = "action", value_name = "ACTION", value_parser = super::action)]
    pub actions: Vec<filter_common::abi::Action>,
    /// Stop after this many packets.
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// Stop after this long.
    #[arg(long, value_name = "TIME", value_parser = super::duration, default_value = "30s")]
    pub duration: Duration,
    /// Bytes kept of each packet (at most 256).
    #[arg(long, value_name = "BYTES", default_value_t = crate::capture::DEFAULT_SNAPLEN)]
    pub snaplen: u32,
    /// Packets copied a second per CPU, at most; the rest are counted, not copied.
    #[arg(long, value_name = "N", default_value_t = crate::capture::DEFAULT_BUDGET)]
    pub budget: u32,
    /// The pcapng file to write, or - for standard output. An existing file is refused
    /// (a symlink always is).
    #[arg(short = 'w', value_name = "FILE")]
    pub write: PathBuf,
    /// Overwrite an existing FILE (once the daemon has started the capture).
    #[arg(long)]
    pub force: bool,
}

pub fn capture(socket: &Path, args: CaptureArgs) -> Result<()> {
    let spec = CaptureSpec {
        reasons: args.reasons,
        actions: args.actions,
        classes: args.classes,
        source: args.source,
        count: args.count,
        duration: args.duration,
        snaplen: args.snaplen,
        budget: args.budget,
    };
    let write = args.write.as_path();
    spec.check()?;
    // The file first, so a path that cannot be written starts nothing in the daemon; a file
    // this command made is removed again if the daemon refuses, and an existing one (with
    // --force) is emptied only once the daemon has started.
    let to_stdout = write == Path::new("-");
    let (file, made, empty) = if to_stdout {
        (None, false, false)
    } else {
        let (file, made, empty) = open_output(write, args.force)?;
        (Some(file), made, empty)
    };
    let refused = |e: anyhow::Error| {
        if made {
            let _ = std::fs::remove_file(write);
        }
        e
    };
    let (response, stream) =
        api::call_then_read(socket, &Request::Capture(crate::cmd::Capture { spec }))
            .map_err(refused)?;
    if !response.ok {
        return Err(refused(anyhow!(
            "{}",
            response
                .error
                .unwrap_or_else(|| "the daemon refused".into())
        )));
    }
    let started: CaptureStarted =
        serde_json::from_str(response.data.get()).context("unexpected answer from the daemon")?;
    let out: Box<dyn Write> = match file {
        None => Box::new(io::stdout().lock()),
        Some(f) => {
            if empty {
                f.set_len(0)
                    .with_context(|| format!("cannot empty {}", write.display()))?;
            }
            Box::new(BufWriter::new(f))
        }
    };
    // The capture lasts as long as it was asked to: no answer timeout from here on.
    stream.get_ref().set_read_timeout(None)?;
    eprintln!(
        "levee capture: on {}, writing to {}",
        started.interfaces.join(", "),
        write.display()
    );
    let mut reader = PcapNgReader::new(stream).context("the capture stream is not pcapng")?;
    let mut writer = PcapNgWriter::with_section_header(out, reader.section().clone())?;
    let mut packets = 0u64;
    let mut ended = Vec::new();
    while let Some(block) = reader.next_block() {
        let block = block.context("the capture stream broke off")?;
        match &block {
            Block::EnhancedPacket(_) => packets += 1,
            Block::InterfaceStatistics(stats) => {
                let comment = stats.options.iter().find_map(|o| match o {
                    InterfaceStatisticsOption::Comment(c) => Some(c.to_string()),
                    _ => None,
                });
                let iface = started.interfaces.get(stats.interface_id as usize);
                ended.push(format!(
                    "{}: {}",
                    iface.map_or("?", |s| s.as_str()),
                    comment.unwrap_or_default()
                ));
            }
            _ => {}
        }
        writer.write_block(&block)?;
        writer.get_mut().flush()?;
    }
    eprintln!("levee capture: {packets} packets written");
    for line in &ended {
        eprintln!("{line}");
    }
    if ended.is_empty() {
        return Err(anyhow!(
            "the daemon closed the capture before its end: {packets} packets written"
        ));
    }
    Ok(())
}

/// Opens the capture's file without following a symlink: a new one (made, 0600); an
/// existing regular file only with `force` (emptied later, once the daemon has started); a
/// device or a FIFO (`/dev/null`) as it is. The file, whether it was made, and whether it is
/// to be emptied.
fn open_output(path: &Path, force: bool) -> Result<(File, bool, bool)> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let shown = path.display();
    let made = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path);
    match made {
        Ok(f) => return Ok((f, true, false)),
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
            return Err(e).with_context(|| format!("cannot write {shown}"));
        }
        Err(_) => {}
    }
    let meta = std::fs::symlink_metadata(path).with_context(|| format!("cannot read {shown}"))?;
    if meta.file_type().is_symlink() {
        bail!("{shown} is a symlink: refusing to follow it");
    }
    if meta.is_file() && !force {
        bail!("{shown} exists: refusing to overwrite it (--force overwrites)");
    }
    let f = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .with_context(|| format!("cannot write {shown}"))?;
    Ok((f, false, meta.is_file()))
}
