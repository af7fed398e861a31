//! The GDB JIT interface: registering in-memory objects that describe
//! compiled code, so that `gdb` shows kiln functions and their `.kir`
//! lines (GDB manual, "JIT Compilation Interface").
//!
//! The process exports `__jit_debug_descriptor` (a doubly linked list of
//! [`JitCodeEntry`]s, each pointing at an object file in memory) and the
//! function `__jit_debug_register_code`, on which GDB sets a breakpoint:
//! after changing the list, the registering code stores the action and
//! the entry in the descriptor and calls it. GDB then reads the object
//! (made by [`super::elf::object`]) out of the process's memory.
//!
//! The descriptor is global to the process; a mutex serializes every
//! change to it (GDB reads it only while the process is stopped in the
//! registration function). Unregistering happens when the
//! [`GdbRegistration`] is dropped: when its module is removed, or its
//! engine dropped.
//!
//! The two symbols are unmangled and global: a process embedding another
//! JIT that defines them too (LLVM's ORC, wasmtime) cannot link both.

use std::ptr::{addr_of_mut, null_mut};
use std::sync::Mutex;

/// `JIT_NOACTION`, `JIT_REGISTER_FN`, `JIT_UNREGISTER_FN`.
const JIT_REGISTER: u32 = 1;
const JIT_UNREGISTER: u32 = 2;

/// One registered object (GDB's `struct jit_code_entry`).
#[repr(C)]
pub struct JitCodeEntry {
    next: *mut JitCodeEntry,
    prev: *mut JitCodeEntry,
    symfile_addr: *const u8,
    symfile_size: u64,
}

/// GDB's `struct jit_descriptor`.
#[repr(C)]
pub struct JitDescriptor {
    version: u32,
    action_flag: u32,
    relevant_entry: *mut JitCodeEntry,
    first_entry: *mut JitCodeEntry,
}

/// The descriptor GDB looks up by name.
#[no_mangle]
pub static mut __jit_debug_descriptor: JitDescriptor = JitDescriptor {
    version: 1,
    action_flag: 0,
    relevant_entry: null_mut(),
    first_entry: null_mut(),
};

/// GDB sets a breakpoint here; called after every change of the list.
#[no_mangle]
#[inline(never)]
pub extern "C" fn __jit_debug_register_code() {
    // An empty asm block is a side effect the optimizer keeps, so calls to
    // this function are never removed.
    // SAFETY: it does nothing.
    unsafe { std::arch::asm!("", options(nostack)) };
}

/// Serializes changes of the descriptor's list.
static LIST: Mutex<()> = Mutex::new(());

/// An object registered with the GDB JIT interface; dropping it
/// unregisters it.
pub struct GdbRegistration {
    /// The entry, linked into the descriptor's list while registered.
    entry: Box<JitCodeEntry>,
    /// The object; it stays at this address while registered.
    object: Box<[u8]>,
}

// SAFETY: the raw pointers inside the entry are only touched under `LIST`
// (in `register` and `drop`); shared access reads only the immutable object.
unsafe impl Send for GdbRegistration {}
// SAFETY: as for `Send`: `&GdbRegistration` gives read-only access to the
// object bytes, and the entry is never touched through a shared reference.
unsafe impl Sync for GdbRegistration {}

impl GdbRegistration {
    /// Registers `object` (an ELF object from [`super::elf::object`]).
    pub fn register(object: Vec<u8>) -> GdbRegistration {
        let object = object.into_boxed_slice();
        let mut entry = Box::new(JitCodeEntry {
            next: null_mut(),
            prev: null_mut(),
            symfile_addr: object.as_ptr(),
            symfile_size: object.len() as u64,
        });
        let guard = LIST.lock().unwrap_or_else(|e| e.into_inner());
        let e: *mut JitCodeEntry = &mut *entry;
        // SAFETY: the descriptor and every entry in its list are only
        // changed under `LIST`, which is held; `e` is a live entry that
        // stays at this address (boxed) until `drop` unlinks it.
        unsafe {
            let d = addr_of_mut!(__jit_debug_descriptor);
            (*e).next = (*d).first_entry;
            if !(*d).first_entry.is_null() {
                (*(*d).first_entry).prev = e;
            }
            (*d).first_entry = e;
            (*d).relevant_entry = e;
            (*d).action_flag = JIT_REGISTER;
        }
        __jit_debug_register_code();
        drop(guard);
        GdbRegistration { entry, object }
    }

    /// The registered object.
    pub fn object(&self) -> &[u8] {
        &self.object
    }
}

impl Drop for GdbRegistration {
    fn drop(&mut self) {
        let guard = LIST.lock().unwrap_or_else(|e| e.into_inner());
        let e: *mut JitCodeEntry = &mut *self.entry;
        // SAFETY: as in `register`: `e` is linked into the list, which is
        // only changed under `LIST`.
        unsafe {
            let d = addr_of_mut!(__jit_debug_descriptor);
            if !(*e).prev.is_null() {
                (*(*e).prev).next = (*e).next;
            } else {
                (*d).first_entry = (*e).next;
            }
            if !(*e).next.is_null() {
                (*(*e).next).prev = (*e).prev;
            }
            (*d).relevant_entry = e;
            (*d).action_flag = JIT_UNREGISTER;
        }
        __jit_debug_register_code();
        drop(guard);
    }
}

/// The number of objects registered now (for tests).
pub fn registered_count() -> usize {
    let _guard = LIST.lock().unwrap_or_else(|e| e.into_inner());
    let mut n = 0;
    // SAFETY: the list is only changed under `LIST`, which is held.
    unsafe {
        let mut e = (*addr_of_mut!(__jit_debug_descriptor)).first_entry;
        while !e.is_null() {
            n += 1;
            e = (*e).next;
        }
    }
    n
}
