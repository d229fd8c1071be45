//! Batched map updates (BPF_MAP_UPDATE_BATCH), which LPM tries support and aya 0.14 does not
//! bind: a million-prefix list goes to the kernel in a few dozen calls instead of a million.

use ipnet::IpNet;

use super::{Edit, List};

/// Insertions in a row from which a batch is worth it, and the batch size.
pub const BATCH_MIN: usize = 64;
pub const BATCH: usize = 65_536;

/// `union bpf_attr` as BPF_MAP_*_BATCH reads it.
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

const BPF_MAP_UPDATE_BATCH: libc::c_long = 26;

/// Inserts one family's prefixes in one BPF_MAP_UPDATE_BATCH call (LPM tries have it since
/// Linux 5.x; aya 0.14 does not bind it). On failure, how many went in, and the error.
pub fn batch_insert(
    fd: std::os::fd::RawFd,
    list: List,
    edits: &[Edit],
) -> std::result::Result<(), (usize, anyhow::Error)> {
    let (mut keys, mut values) = (Vec::new(), Vec::new());
    for e in edits {
        keys.extend(u32::from(e.net.prefix_len()).to_ne_bytes());
        match e.net {
            IpNet::V4(n) => keys.extend(n.network().octets()),
            IpNet::V6(n) => keys.extend(n.network().octets()),
        }
        match list {
            List::Block => values.extend(e.new.unwrap_or(0).to_ne_bytes()),
            List::Allow => values.extend(0u32.to_ne_bytes()),
        }
    }
    let mut attr = BatchAttr {
        keys: keys.as_ptr() as u64,
        values: values.as_ptr() as u64,
        count: edits.len() as u32,
        map_fd: fd as u32,
        ..BatchAttr::default()
    };
    // SAFETY: bpf(2) with an attr that points at buffers of `count` keys and values, which
    // outlive the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_MAP_UPDATE_BATCH,
            &mut attr as *mut BatchAttr,
            std::mem::size_of::<BatchAttr>(),
        )
    };
    if rc < 0 {
        let err = std::io::Error::last_os_error();
        let done = (attr.count as usize).min(edits.len());
        let failed = edits.get(done).map_or(edits[0].net, |e| e.net);
        return Err((
            done,
            anyhow::Error::new(err).context(format!("failed to add {failed}")),
        ));
    }
    Ok(())
}
