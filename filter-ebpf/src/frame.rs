//! [`Frame`] over XDP packet memory: every read is checked against `data_end` right before
//! it happens, in the form the verifier can follow.

use aya_ebpf::{bindings::xdp_md, programs::XdpContext};
use filter_common::parse::Frame;

pub struct XdpFrame {
    ctx: *mut xdp_md,
    start: usize,
    end: usize,
}

impl XdpFrame {
    #[inline(always)]
    pub fn new(ctx: &XdpContext) -> XdpFrame {
        XdpFrame {
            ctx: ctx.ctx,
            start: ctx.data(),
            end: ctx.data_end(),
        }
    }

    /// The program's context, for helpers that take it.
    #[inline(always)]
    pub fn ctx(&self) -> *mut xdp_md {
        self.ctx
    }

    #[inline(always)]
    pub fn byte_len(&self) -> u64 {
        (self.end - self.start) as u64
    }
}

impl Frame for XdpFrame {
    #[inline(always)]
    fn size(&self) -> usize {
        self.end - self.start
    }

    #[inline(always)]
    fn load<const N: usize>(&self, offset: usize) -> Option<[u8; N]> {
        // The parser also checks lengths as plain numbers (IP total length within the frame),
        // from which LLVM would prove this check redundant and drop it; the verifier cannot
        // follow that proof. Reading data_end afresh keeps the check where the verifier wants it.
        // SAFETY: ctx is the program's context pointer.
        let end = unsafe { core::ptr::read_volatile(&(*self.ctx).data_end) } as usize;
        let ptr = self.start + offset;
        if ptr + N > end {
            return None;
        }
        // SAFETY: the N bytes at ptr lie inside the packet, checked just above.
        Some(unsafe { core::ptr::read_unaligned(ptr as *const [u8; N]) })
    }
}
