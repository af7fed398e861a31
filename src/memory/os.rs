//! The operating-system side of the memory manager: reserving address
//! space, the memfd behind the two views of a reservation, mapping page
//! runs with the protection of their kind, releasing memory, the fork
//! guard and the instruction-cache flush.
//!
//! Every function here works on page-aligned runs that the caller owns (a
//! reservation of its own, or the file behind it); the caller keeps the
//! bookkeeping of what each page is.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

/// The system page size (4 KiB if the system says something odd).
pub(super) fn page_size() -> usize {
    // SAFETY: sysconf only reads a system constant.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    match usize::try_from(n) {
        Ok(n) if n.is_power_of_two() && n >= 4096 => n,
        _ => 4096,
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
const MAP_NORESERVE: libc::c_int = libc::MAP_NORESERVE;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const MAP_NORESERVE: libc::c_int = 0;

fn check_map(p: *mut libc::c_void) -> io::Result<usize> {
    if p == libc::MAP_FAILED {
        Err(io::Error::last_os_error())
    } else {
        Ok(p as usize)
    }
}

/// Reserves `len` bytes of address space, inaccessible and without memory
/// behind it; its start.
pub(super) fn reserve(len: usize) -> io::Result<usize> {
    // SAFETY: a fresh anonymous mapping at an address of the kernel's
    // choosing; it replaces nothing and nothing refers to it yet.
    check_map(unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | MAP_NORESERVE,
            -1,
            0,
        )
    })
}

/// Unmaps `start..start+len`.
///
/// # Safety
/// The range must be a mapping of ours that nothing refers to any more.
pub(super) unsafe fn unmap(start: usize, len: usize) {
    // SAFETY: the caller's obligation.
    unsafe { libc::munmap(start as *mut libc::c_void, len) };
}

/// Changes the protection of whole pages of one of our reservations.
///
/// Callers pass only page runs whose state allows the change (see the
/// module invariants of [`crate::memory`]) and to which no Rust reference
/// is live across a change that removes access.
pub(super) fn protect(start: usize, len: usize, prot: libc::c_int) -> io::Result<()> {
    // SAFETY: the range is page-aligned and inside one of our reservations
    // (a caller obligation above); mprotect touches no other memory, and a
    // failure leaves the old protections, which the caller records.
    let rc = unsafe { libc::mprotect(start as *mut libc::c_void, len, prot) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Drops the contents of whole pages of private memory (they read as zero
/// afterwards); whether it did. On failure the memory (and its contents)
/// stays.
pub(super) fn forget(start: usize, len: usize) -> bool {
    // SAFETY: the pages are ours and hold no section; dropping their
    // contents is what the caller wants.
    unsafe { libc::madvise(start as *mut libc::c_void, len, libc::MADV_DONTNEED) == 0 }
}

/// Replaces the page run `start..start+len` of a reservation with fresh
/// private anonymous memory of protection `prot` (zero-filled, no memory
/// until touched).
pub(super) fn map_private(start: usize, len: usize, prot: libc::c_int) -> io::Result<()> {
    // SAFETY: MAP_FIXED over a page run of our own reservation whose state
    // allows it (the caller's bookkeeping): no section and no Rust
    // reference lives there, so replacing the mapping loses nothing.
    let p = check_map(unsafe {
        libc::mmap(
            start as *mut libc::c_void,
            len,
            prot,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED | MAP_NORESERVE,
            -1,
            0,
        )
    })?;
    debug_assert_eq!(p, start);
    Ok(())
}

/// The memory file behind a dual-view reservation, and its writable view.
///
/// The file is as long as the reservation and sparse: a page takes memory
/// only once written. The executable view is the reservation itself, into
/// which [`CodeFile::map_exec`] maps runs of the file read-only (rodata) or
/// read+execute (text); the writable view maps the whole file read-write
/// at another address, known only to the memory manager.
///
/// memmap2 (as the design asks) makes and owns the writable view and the
/// probe mapping; the reservation and the runs mapped into it at fixed
/// addresses are plain `mmap` calls, because memmap2 maps neither
/// inaccessible address space nor at a chosen address, and a direct call
/// must reach from any section to any other of a reservation.
#[derive(Debug)]
pub(super) struct CodeFile {
    file: std::fs::File,
    view: memmap2::MmapRaw,
}

/// `MFD_EXEC`: a memfd that may be mapped executable even where the system
/// seals new memfds against execution by default (Linux 6.3+,
/// `vm.memfd_noexec`). Older kernels reject the flag, and are retried
/// without it.
#[cfg(any(target_os = "linux", target_os = "android"))]
const MFD_EXEC: libc::c_uint = 0x10;

impl CodeFile {
    /// A memfd of `len` bytes mapped once, read-write.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub(super) fn create(len: usize) -> io::Result<CodeFile> {
        use std::os::fd::FromRawFd;
        let name = c"kiln-code";
        // SAFETY: memfd_create takes a NUL-terminated name and flags and
        // returns a new descriptor or -1.
        let mut fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | MFD_EXEC) };
        if fd < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) {
            // SAFETY: as above.
            fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
        }
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a descriptor we just opened and own alone.
        let file = unsafe { std::fs::File::from_raw_fd(fd) };
        file.set_len(len as u64)?;
        let view = memmap2::MmapOptions::new().len(len).map_raw(&file)?;
        // A child made by fork() gets no writable view: if it tried to
        // write code, it would write into its parent's. (The fork guard
        // below stops it first; this is the second line.)
        view.advise(memmap2::Advice::DontFork)?;
        Ok(CodeFile { file, view })
    }

    /// Memory files are a Linux feature; elsewhere every reservation uses
    /// page-granular protection changes.
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    pub(super) fn create(_len: usize) -> io::Result<CodeFile> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "no memfd on this system",
        ))
    }

    /// Whether the system lets this file be mapped executable (a
    /// `noexec`-sealed memfd, or a security policy against executable
    /// shared mappings, says no): tried on a throwaway mapping of its first
    /// page at an address of the kernel's choosing, never over ours.
    ///
    /// The answer is the same for every memfd this process makes (same
    /// flags, same policy), so it is asked once: later reservations save
    /// the two system calls.
    pub(super) fn can_execute(&self) -> bool {
        static ANSWER: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *ANSWER.get_or_init(|| {
            let page = page_size().min(self.view.len());
            // SAFETY: a read+execute shared mapping of our own file, dropped
            // (unmapped) at once; nothing reads it.
            unsafe { memmap2::MmapOptions::new().len(page).map_exec(&self.file) }.is_ok()
        })
    }

    /// Where offset 0 of the file is mapped writable.
    pub(super) fn write_base(&self) -> usize {
        self.view.as_mut_ptr() as usize
    }

    /// Maps `len` bytes of the file at offset `off` over the page run at
    /// `at` (in the reservation), shared, with protection `prot` (never
    /// writable: the caller passes read, or read+execute).
    pub(super) fn map_exec(
        &self,
        at: usize,
        off: usize,
        len: usize,
        prot: libc::c_int,
    ) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        debug_assert_eq!(
            prot & libc::PROT_WRITE,
            0,
            "the executable view is never writable"
        );
        let off = libc::off_t::try_from(off)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset too large"))?;
        // SAFETY: MAP_FIXED over a page run of our own reservation that
        // holds no section and no Rust reference (the caller's
        // bookkeeping), mapping our own file.
        let p = check_map(unsafe {
            libc::mmap(
                at as *mut libc::c_void,
                len,
                prot,
                libc::MAP_SHARED | libc::MAP_FIXED,
                self.file.as_raw_fd(),
                off,
            )
        })?;
        debug_assert_eq!(p, at);
        Ok(())
    }

    /// Drops this process's mapping of the writable view's pages covering
    /// file offsets `off..off+len` (whole pages): the bytes stay in the
    /// file (and in the executable view), and the view maps a page again
    /// when it is next written. Pages written once and then left stop
    /// counting twice in the resident set. Only a hint: failure keeps the
    /// pages mapped.
    pub(super) fn unmap_written(&self, off: usize, len: usize) {
        let end = (off + len).min(self.view.len());
        if off >= end {
            return;
        }
        // SAFETY: `off..end` lies in our own shared file mapping; for a
        // shared mapping MADV_DONTNEED only drops page-table entries (the
        // file keeps the contents), and no Rust reference into the view
        // outlives the `bytes_mut` borrow that wrote it.
        unsafe {
            libc::madvise(
                self.view.as_mut_ptr().add(off).cast::<libc::c_void>(),
                end - off,
                libc::MADV_DONTNEED,
            )
        };
    }

    /// Gives the memory of `len` bytes at offset `off` back to the system;
    /// they read as zero afterwards, in both views. Whether it did: on
    /// failure the memory (and its contents) stays.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub(super) fn punch(&self, off: usize, len: usize) -> bool {
        use std::os::fd::AsRawFd;
        let (Ok(off), Ok(len)) = (libc::off_t::try_from(off), libc::off_t::try_from(len)) else {
            return false;
        };
        // SAFETY: deallocating a range of our own file; no section lives
        // there (the caller's bookkeeping).
        unsafe {
            libc::fallocate(
                self.file.as_raw_fd(),
                libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                off,
                len,
            ) == 0
        }
    }

    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    pub(super) fn punch(&self, _off: usize, _len: usize) -> bool {
        false
    }
}

/// Counts fork()s of this process, as seen in the child.
static FORK_GENERATION: AtomicU64 = AtomicU64::new(0);

extern "C" fn forked_child() {
    FORK_GENERATION.fetch_add(1, Ordering::Relaxed);
}

/// The current fork generation: 0 in the original process, different in
/// every child made by fork() after the first call. A dual-view manager
/// compares it with the one it was made in, so that a child never writes
/// through a view it shares with its parent.
pub(super) fn fork_generation() -> u64 {
    static REGISTER: std::sync::Once = std::sync::Once::new();
    REGISTER.call_once(|| {
        // SAFETY: registers a handler that only bumps an atomic counter,
        // which is async-signal-safe as fork's child handlers must be.
        unsafe { libc::pthread_atfork(None, None, Some(forked_child)) };
    });
    FORK_GENERATION.load(Ordering::Relaxed)
}

/// Makes freshly written code at `start..start+len` (executable view)
/// visible to instruction fetch. x86-64 keeps instruction and data caches
/// coherent, also across the two views: nothing to do.
#[cfg(not(target_arch = "aarch64"))]
pub(super) fn flush_icache(_start: usize, _len: usize) {}

/// Makes freshly written code at `start..start+len` visible to instruction
/// fetch: clean the data cache to the point of unification, invalidate the
/// instruction cache, then synchronise — what `__clear_cache` does.
///
/// `start` is the executable view's address even when the bytes were
/// written through the writable view: AArch64 data caches behave as
/// physically indexed, so cleaning by either alias cleans the same lines,
/// and the instruction cache must be invalidated at the address code is
/// fetched from. Other threads run the code only after taking the lock
/// that published it; the broadcast `ic ivau` and `dsb ish` complete
/// before that lock is released.
#[cfg(target_arch = "aarch64")]
pub(super) fn flush_icache(start: usize, len: usize) {
    #[cfg(target_vendor = "apple")]
    {
        extern "C" {
            fn sys_icache_invalidate(start: *mut libc::c_void, len: usize);
        }
        // SAFETY: the range is mapped and readable (R+X).
        unsafe { sys_icache_invalidate(start as *mut libc::c_void, len) };
    }
    #[cfg(not(target_vendor = "apple"))]
    {
        use std::arch::asm;
        let ctr: u64;
        // SAFETY: CTR_EL0 is readable from EL0 on Linux (the kernel traps
        // and emulates it where it is not) and reading it has no effect.
        unsafe { asm!("mrs {}, ctr_el0", out(reg) ctr, options(nomem, nostack)) };
        let dline = 4usize << ((ctr >> 16) & 0xf);
        let iline = 4usize << (ctr & 0xf);
        let end = start + len;
        let mut a = start & !(dline - 1);
        while a < end {
            // SAFETY: cache maintenance on a mapped, readable address
            // changes no architectural memory contents.
            unsafe { asm!("dc cvau, {}", in(reg) a, options(nostack)) };
            a += dline;
        }
        // SAFETY: barriers only order memory operations.
        unsafe { asm!("dsb ish", options(nostack)) };
        let mut a = start & !(iline - 1);
        while a < end {
            // SAFETY: as for `dc cvau` above.
            unsafe { asm!("ic ivau, {}", in(reg) a, options(nostack)) };
            a += iline;
        }
        // SAFETY: barriers only order memory and instruction fetch.
        unsafe { asm!("dsb ish", "isb", options(nostack)) };
    }
}
