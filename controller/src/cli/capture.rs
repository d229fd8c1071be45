//! `levee capture`: asks the daemon for a capture and copies its pcapng stream to the file
//! or standard output block by block (flushed at once, so `| tcpdump -r -` shows packets as
//! they come); at the end, says on standard error what was written and what was not copied.

use std::{
    fs::File,
    io::{self, BufWriter, Write},
    path::Path,
};

use anyhow::{Context as _, Result, anyhow};
use pcap_file::pcapng::{
    Block, PcapNgReader, PcapNgWriter, blocks::interface_statistics::InterfaceStatisticsOption,
};

use crate::{
    api::{self, Request},
    capture::{CaptureSpec, CaptureStarted},
};

pub fn capture(socket: &Path, spec: CaptureSpec, write: &Path) -> Result<()> {
    spec.check()?;
    // The file first, so a path that cannot be written starts nothing in the daemon; a file
    // this command made is removed again if the daemon refuses.
    let to_stdout = write == Path::new("-");
    let made = !to_stdout && !write.exists();
    let out: Box<dyn Write> = if to_stdout {
        Box::new(io::stdout().lock())
    } else {
        let file =
            File::create(write).with_context(|| format!("cannot write {}", write.display()))?;
        Box::new(BufWriter::new(file))
    };
    let refused = |e: anyhow::Error| {
        if made {
            let _ = std::fs::remove_file(write);
        }
        e
    };
    let (response, stream) =
        api::call_then_read(socket, &Request::Capture { spec }).map_err(refused)?;
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
