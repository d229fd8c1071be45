//! A raw-frame sender for benchmarks: an AF_PACKET socket on a veth inside a namespace the
//! benchmark made, sending pre-built frames in batches with sendmmsg.

use std::{ffi::CString, io, mem::zeroed};

/// Sends every `frame_len`-byte frame in `frames` out of `ifname` (in the calling thread's
/// network namespace). Returns the number of frames the kernel accepted.
pub fn send_frames(ifname: &str, frames: &[u8], frame_len: usize) -> io::Result<u64> {
    const BATCH: usize = 64;
    let name = CString::new(ifname).map_err(io::Error::other)?;
    // SAFETY: plain libc calls with valid arguments; the fd is closed below.
    unsafe {
        let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let close = |e: io::Error| {
            libc::close(fd);
            Err(e)
        };
        let ifindex = libc::if_nametoindex(name.as_ptr());
        if ifindex == 0 {
            return close(io::Error::last_os_error());
        }
        let mut sll: libc::sockaddr_ll = zeroed();
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_ifindex = ifindex as i32;
        if libc::bind(
            fd,
            (&sll as *const libc::sockaddr_ll).cast(),
            size_of::<libc::sockaddr_ll>() as u32,
        ) < 0
        {
            return close(io::Error::last_os_error());
        }
        let one: libc::c_int = 1;
        libc::setsockopt(
            fd,
            libc::SOL_PACKET,
            libc::PACKET_QDISC_BYPASS,
            (&one as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as u32,
        );
        let count = frames.len() / frame_len;
        let mut sent = 0u64;
        let mut next = 0;
        while next < count {
            let n = BATCH.min(count - next);
            let mut iov: [libc::iovec; BATCH] = zeroed();
            let mut msgs: [libc::mmsghdr; BATCH] = zeroed();
            for i in 0..n {
                let start = (next + i) * frame_len;
                iov[i].iov_base = frames[start..].as_ptr() as *mut libc::c_void;
                iov[i].iov_len = frame_len;
                msgs[i].msg_hdr.msg_iov = &mut iov[i];
                msgs[i].msg_hdr.msg_iovlen = 1;
            }
            let r = libc::sendmmsg(fd, msgs.as_mut_ptr(), n as u32, 0);
            if r < 0 {
                let e = io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::ENOBUFS) {
                    std::thread::yield_now();
                    continue;
                }
                return close(e);
            }
            sent += r as u64;
            next += r as usize;
        }
        libc::close(fd);
        Ok(sent)
    }
}
