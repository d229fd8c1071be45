//! A raw-frame sender for tests and benchmarks: an AF_PACKET socket on a veth inside a
//! namespace the test made, sending pre-built frames in batches with sendmmsg, at full speed
//! or paced.

use std::{
    ffi::CString,
    io,
    mem::zeroed,
    time::{Duration, Instant},
};

/// Frames per sendmmsg at full speed.
pub const BATCH: usize = 64;
/// Frames per sendmmsg when paced: small, so the receiving veth's ring (256 frames, shared
/// with every other sender) sees a steady stream rather than bursts.
const PACED_BATCH: usize = 8;

/// An AF_PACKET socket bound to one interface, closed on drop.
pub struct RawSender {
    fd: libc::c_int,
}

impl RawSender {
    /// Opens the socket on `ifname` in the calling thread's network namespace.
    pub fn open(ifname: &str) -> io::Result<RawSender> {
        let name = CString::new(ifname).map_err(io::Error::other)?;
        // SAFETY: plain libc calls with valid arguments; the fd is owned by the result.
        unsafe {
            let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            let sender = RawSender { fd };
            let ifindex = libc::if_nametoindex(name.as_ptr());
            if ifindex == 0 {
                return Err(io::Error::last_os_error());
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
                return Err(io::Error::last_os_error());
            }
            let one: libc::c_int = 1;
            libc::setsockopt(
                fd,
                libc::SOL_PACKET,
                libc::PACKET_QDISC_BYPASS,
                (&one as *const libc::c_int).cast(),
                size_of::<libc::c_int>() as u32,
            );
            Ok(sender)
        }
    }

    /// Sends every `frame_len`-byte frame in `frames`, at most `pps` a second if given.
    /// Returns the number of frames the kernel accepted.
    pub fn send(&self, frames: &[u8], frame_len: usize, pps: Option<f64>) -> io::Result<u64> {
        let count = frames.len() / frame_len;
        let batch = if pps.is_some() { PACED_BATCH } else { BATCH };
        let started = Instant::now();
        let mut sent = 0u64;
        let mut next = 0;
        while next < count {
            if let Some(pps) = pps {
                let due = started + Duration::from_secs_f64(next as f64 / pps);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
            let n = batch.min(count - next);
            // SAFETY: the iovecs point into `frames`, which outlives the call.
            let r = unsafe {
                let mut iov: [libc::iovec; BATCH] = zeroed();
                let mut msgs: [libc::mmsghdr; BATCH] = zeroed();
                for i in 0..n {
                    let start = (next + i) * frame_len;
                    iov[i].iov_base = frames[start..].as_ptr() as *mut libc::c_void;
                    iov[i].iov_len = frame_len;
                    msgs[i].msg_hdr.msg_iov = &mut iov[i];
                    msgs[i].msg_hdr.msg_iovlen = 1;
                }
                libc::sendmmsg(self.fd, msgs.as_mut_ptr(), n as u32, 0)
            };
            if r < 0 {
                let e = io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::ENOBUFS) {
                    std::thread::yield_now();
                    continue;
                }
                return Err(e);
            }
            sent += r as u64;
            next += r as usize;
        }
        Ok(sent)
    }
}

impl Drop for RawSender {
    fn drop(&mut self) {
        // SAFETY: the fd is ours and closed once.
        unsafe { libc::close(self.fd) };
    }
}

/// Sends every `frame_len`-byte frame in `frames` out of `ifname` (in the calling thread's
/// network namespace) at full speed. Returns the number of frames the kernel accepted.
pub fn send_frames(ifname: &str, frames: &[u8], frame_len: usize) -> io::Result<u64> {
    RawSender::open(ifname)?.send(frames, frame_len, None)
}
