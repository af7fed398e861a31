//! Real memory of the interpreter: zeroed, aligned buffers for data items,
//! the alloca stack and the function-address table, and the writing of data
//! items' initial contents.
//!
//! Invariant: a [`RawBuf`] owns `size` bytes at `ptr` (at least 1, so every
//! buffer has a distinct non-null address) until it is dropped; the
//! interpreter never moves or resizes one, so addresses handed to the program
//! stay valid for the interpreter's lifetime.

use crate::error::{Error, Result};
use crate::ir::{DataDef, DataValue};
use std::alloc::Layout;
use std::ptr::NonNull;

/// An owned, zero-initialized, aligned allocation.
pub(super) struct RawBuf {
    ptr: NonNull<u8>,
    layout: Layout,
    /// Mapped with `mmap` (released with `munmap`) rather than allocated
    /// from the Rust allocator.
    #[cfg_attr(not(unix), allow(dead_code))]
    mapped: bool,
}

/// Buffers at least this large are mapped straight from the OS: their pages
/// are zero on first touch, so a large stack or `zero` item costs nothing
/// until used. (The C allocator would `memset` them once its mmap threshold
/// has grown, which made creating an interpreter cost ~100 µs.)
const MAP_THRESHOLD: usize = 256 << 10;

impl RawBuf {
    /// `size` zero bytes aligned to `align` (a power of two, at most a
    /// page when the buffer is large enough to be mapped).
    pub fn zeroed(size: u64, align: u64, what: &str) -> Result<RawBuf> {
        let oom = || Error::Runtime(format!("out of memory allocating {size} bytes for {what}"));
        let size = usize::try_from(size.max(1)).map_err(|_| oom())?;
        let align = usize::try_from(align.max(1)).map_err(|_| oom())?;
        let layout = Layout::from_size_align(size, align).map_err(|_| oom())?;
        #[cfg(unix)]
        if size >= MAP_THRESHOLD && align <= 4096 {
            // SAFETY: an anonymous private mapping of `size` bytes has no
            // preconditions; failure is reported as MAP_FAILED.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    size,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                    -1,
                    0,
                )
            };
            if p == libc::MAP_FAILED {
                return Err(oom());
            }
            let ptr = NonNull::new(p.cast::<u8>()).ok_or_else(oom)?;
            return Ok(RawBuf {
                ptr,
                layout,
                mapped: true,
            });
        }
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        let ptr = NonNull::new(ptr).ok_or_else(oom)?;
        Ok(RawBuf {
            ptr,
            layout,
            mapped: false,
        })
    }

    pub fn addr(&self) -> u64 {
        self.ptr.as_ptr() as usize as u64
    }

    pub fn len(&self) -> u64 {
        self.layout.size() as u64
    }

    /// Copies `bytes` to offset `at`; out-of-range parts are an error.
    pub fn write(&mut self, at: u64, bytes: &[u8]) -> Result<()> {
        let end = at.checked_add(bytes.len() as u64);
        if end.is_none_or(|e| e > self.len()) {
            return Err(Error::Runtime("data item contents out of range".into()));
        }
        // SAFETY: `at + bytes.len() <= size` was just checked, and the
        // buffer is owned by `self` and does not overlap `bytes`.
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                self.ptr.as_ptr().add(at as usize),
                bytes.len(),
            )
        };
        Ok(())
    }
}

// SAFETY: a RawBuf is uniquely owned plain memory, like a `Box<[u8]>`; the
// raw pointer is only an address, so moving the owner to another thread is
// sound.
unsafe impl Send for RawBuf {}

impl Drop for RawBuf {
    fn drop(&mut self) {
        #[cfg(unix)]
        if self.mapped {
            // SAFETY: mapped in `zeroed` with exactly this size; nothing
            // uses the buffer after the interpreter that owns it is gone.
            unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.layout.size()) };
            return;
        }
        // SAFETY: allocated in `zeroed` with exactly this layout.
        unsafe { std::alloc::dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

/// Writes the initial contents of `def` into `buf`; `sym_addr` gives the
/// address of each `@sym` entry's target symbol.
pub(super) fn init_data(
    buf: &mut RawBuf,
    def: &DataDef,
    sym_addr: impl Fn(crate::ir::SymId) -> Option<u64>,
) -> Result<()> {
    let (offsets, _) = def.layout();
    for (value, &at) in def.values.iter().zip(&offsets) {
        match value {
            DataValue::Int { bytes, values } => {
                let n = (*bytes).clamp(1, 8) as usize;
                for (i, v) in values.iter().enumerate() {
                    let le = (*v as u64).to_le_bytes();
                    buf.write(at + (i * n) as u64, &le[..n])?;
                }
            }
            DataValue::F32(values) => {
                for (i, v) in values.iter().enumerate() {
                    buf.write(at + 4 * i as u64, &v.to_le_bytes())?;
                }
            }
            DataValue::F64(values) => {
                for (i, v) in values.iter().enumerate() {
                    buf.write(at + 8 * i as u64, &v.to_le_bytes())?;
                }
            }
            DataValue::Bytes(b) => buf.write(at, b)?,
            DataValue::Zero(_) => {}
            DataValue::SymAddr { sym, addend } => {
                let base = sym_addr(*sym).ok_or_else(|| {
                    Error::Runtime(format!("data refers to unknown symbol {sym}"))
                })?;
                buf.write(at, &base.wrapping_add(*addend as u64).to_le_bytes())?;
            }
        }
    }
    Ok(())
}
