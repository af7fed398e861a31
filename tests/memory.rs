//! Section memory manager and relocations through the public API: placing,
//! filling, relocating, finalizing, calling, freeing and reusing, with the
//! process's own page table (/proc/self/maps) as the witness for W^X.

use kiln::memory::{
    within_rel32, CodeMapping, FinalizedSection, LoadBatch, MemoryConfig, MemoryManager,
    PackedSection, SectionKind, SectionRef,
};
use kiln::reloc::{self, RelocKind, RelocProblem};
use kiln::Error;
use std::collections::HashSet;

#[cfg(target_os = "linux")]
mod memory_support;
#[cfg(target_os = "linux")]
use memory_support::{assert_no_wx, passes_in_forked_child};

/// Both ways of keeping W^X: every test that does not depend on the mode
/// runs in both.
const MODES: [CodeMapping; 2] = [CodeMapping::DualView, CodeMapping::Protect];

fn manager() -> MemoryManager {
    MemoryManager::new(MemoryConfig::default()).unwrap()
}

fn manager_in(mapping: CodeMapping) -> MemoryManager {
    MemoryManager::new(MemoryConfig {
        mapping,
        ..Default::default()
    })
    .unwrap()
}

fn small_manager(pages: usize, max_reservations: usize, mapping: CodeMapping) -> MemoryManager {
    let page = manager().page_size();
    MemoryManager::new(MemoryConfig {
        reservation_size: pages * page,
        max_reservations,
        mapping,
    })
    .unwrap()
}

/// Whether `mm` really uses two views (memfd may be unavailable).
fn is_dual(mm: &MemoryManager) -> bool {
    mm.stats().dual_view_reservations > 0
}

/// The permissions a section of `kind` has where it runs while its batch
/// is open: final at once with two views, RW (or RW data) otherwise.
#[cfg(target_os = "linux")]
fn open_perms(mm: &MemoryManager, kind: SectionKind) -> &'static str {
    match (is_dual(mm), kind) {
        (_, SectionKind::Data) | (false, _) => "rw-",
        (true, SectionKind::Text) => "r-x",
        (true, SectionKind::Rodata) => "r--",
    }
}

fn fill(mm: &mut MemoryManager, b: &mut LoadBatch, kind: SectionKind, bytes: &[u8]) -> SectionRef {
    let r = mm.allocate(b, kind, bytes.len(), 16).unwrap();
    b.bytes_mut(r).unwrap().copy_from_slice(bytes);
    r
}

/// The permission string (`rwxp`) of the mapping holding `addr`.
#[cfg(target_os = "linux")]
fn perms_of(addr: usize) -> String {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    for line in maps.lines() {
        let mut fields = line.split_whitespace();
        let range = fields.next().unwrap();
        let perms = fields.next().unwrap();
        let (lo, hi) = range.split_once('-').unwrap();
        let lo = usize::from_str_radix(lo, 16).unwrap();
        let hi = usize::from_str_radix(hi, 16).unwrap();
        if (lo..hi).contains(&addr) {
            return perms[..3].to_string();
        }
    }
    panic!("{addr:#x} is not mapped");
}

#[cfg(not(target_os = "linux"))]
fn assert_no_wx(_step: &str) {}

fn page_of(mm: &MemoryManager, addr: usize) -> usize {
    addr / mm.page_size()
}

/// Calls finalized `extern "C" fn() -> i32` code.
#[cfg(target_arch = "x86_64")]
fn call_i32(s: &FinalizedSection) -> i32 {
    assert_eq!(s.kind(), SectionKind::Text);
    // SAFETY: every caller passes a section holding a complete
    // `extern "C" fn() -> i32`, R+X while `s` is alive.
    let f: extern "C" fn() -> i32 = unsafe { std::mem::transmute(s.as_ptr()) };
    f()
}

/// `mov eax, imm32; ret`
fn ret_i32(v: i32) -> Vec<u8> {
    let mut code = vec![0xb8];
    code.extend_from_slice(&v.to_le_bytes());
    code.push(0xc3);
    code
}

#[cfg(target_arch = "x86_64")]
#[test]
fn finalized_code_is_callable() {
    for mode in MODES {
        let mut mm = manager_in(mode);
        let mut b = mm.begin_batch();
        let code = ret_i32(42);
        let r = fill(&mut mm, &mut b, SectionKind::Text, &code);
        #[cfg(target_os = "linux")]
        assert_eq!(
            perms_of(b.address(r).unwrap()),
            open_perms(&mm, SectionKind::Text)
        );
        assert_eq!(b.bytes(r), Some(&code[..]), "readable where it runs");
        let mut fin = mm.finalize(b).unwrap();
        let text = fin.take(r).unwrap();
        assert_eq!(text.bytes(), Some(&code[..]));
        #[cfg(target_os = "linux")]
        assert_eq!(perms_of(text.address()), "r-x");
        assert_eq!(call_i32(&text), 42);
        mm.free(text).unwrap();
    }
}

/// A finalized section is a small handle (an engine keeps one per module,
/// many thousands in a REPL session), and only its own manager takes it
/// back.
#[test]
fn sections_are_small_and_freed_only_by_their_manager() {
    assert!(std::mem::size_of::<FinalizedSection>() <= 40);
    for mode in MODES {
        let (mut a, mut b) = (manager_in(mode), manager_in(mode));
        for mm in [&mut a, &mut b] {
            let mut batch = mm.begin_batch();
            fill(mm, &mut batch, SectionKind::Text, &ret_i32(1));
            mm.finalize(batch).unwrap();
        }
        let mut batch = a.begin_batch();
        let r = fill(&mut a, &mut batch, SectionKind::Text, &ret_i32(7));
        let text = a.finalize(batch).unwrap().take(r).unwrap();
        let err = b.free(text).unwrap_err();
        assert!(err.to_string().contains("another memory manager"), "{err}");
        let mut batch = a.begin_batch();
        let r = fill(&mut a, &mut batch, SectionKind::Text, &ret_i32(7));
        let text = a.finalize(batch).unwrap().take(r).unwrap();
        assert_eq!((text.len(), call_i32(&text)), (ret_i32(7).len(), 7));
        a.free(text).unwrap();
    }
}

/// A packed section is 16 bytes, gives back the same section (address,
/// length, kind, and still callable and freeable) only through the manager
/// that made it, and a section moved by a remote executor is not packed.
#[test]
fn packed_sections_give_back_the_same_section() {
    assert!(std::mem::size_of::<PackedSection>() <= 16);
    for mode in MODES {
        let (mut a, b) = (manager_in(mode), manager_in(mode));
        let mut batch = a.begin_batch();
        let r = fill(&mut a, &mut batch, SectionKind::Text, &ret_i32(5));
        let d = fill(&mut a, &mut batch, SectionKind::Data, &[1, 2, 3]);
        let mut fin = a.finalize(batch).unwrap();
        let (text, data) = (fin.take(r).unwrap(), fin.take(d).unwrap());
        let (addr, len) = (text.address(), text.len());
        let p = text.pack().unwrap();
        assert_eq!(
            (p.address(), p.len(), p.kind()),
            (addr as u64, len, SectionKind::Text)
        );
        let data_addr = data.address();
        let pd = data.pack().unwrap();
        assert_eq!(
            (pd.address(), pd.kind()),
            (data_addr as u64, SectionKind::Data)
        );
        assert!(b.unpack(p).is_none(), "another manager's reservation");
        let text = a.unpack(p).unwrap();
        assert_eq!(
            (text.address(), text.len(), call_i32(&text)),
            (addr, len, 5)
        );
        a.free(text).unwrap();
        a.free(a.unpack(pd).unwrap()).unwrap();
        assert_eq!(a.stats().bytes_in_use, 0);

        let mut batch = a.begin_batch();
        let r = fill(&mut a, &mut batch, SectionKind::Text, &ret_i32(6));
        batch.set_target_address(r, 0x1000).unwrap();
        let moved = a.finalize(batch).unwrap().take(r).unwrap();
        let moved = moved.pack().unwrap_err();
        assert_eq!(moved.target_address(), 0x1000);
        a.free(moved).unwrap();
    }
}

/// A caller reaching its callee by `call rel32` and a constant in rodata by
/// a RIP-relative load, both fixed up with `X86PcRel32`; a pointer in data
/// fixed up with `Abs64`.
#[cfg(target_arch = "x86_64")]
#[test]
fn relocated_calls_and_loads_run() {
    for mode in MODES {
        let mut mm = manager_in(mode);
        let mut b = mm.begin_batch();
        // callee: mov eax, [rip + disp32]; ret
        let callee = fill(
            &mut mm,
            &mut b,
            SectionKind::Text,
            &[0x8b, 0x05, 0, 0, 0, 0, 0xc3],
        );
        // caller: call rel32; add eax, 1; ret
        let caller = fill(
            &mut mm,
            &mut b,
            SectionKind::Text,
            &[0xe8, 0, 0, 0, 0, 0x83, 0xc0, 0x01, 0xc3],
        );
        let konst = fill(&mut mm, &mut b, SectionKind::Rodata, &1234i32.to_le_bytes());
        let ptr = fill(&mut mm, &mut b, SectionKind::Data, &[0; 8]);

        let callee_p = b.target_address(callee).unwrap();
        let caller_p = b.target_address(caller).unwrap();
        let konst_s = b.target_address(konst).unwrap();
        let place = &mut b.bytes_mut(callee).unwrap()[2..];
        reloc::apply(RelocKind::X86PcRel32, place, callee_p + 2, konst_s, -4).unwrap();
        let place = &mut b.bytes_mut(caller).unwrap()[1..];
        reloc::apply(RelocKind::X86PcRel32, place, caller_p + 1, callee_p, -4).unwrap();
        let ptr_place = b.bytes_mut(ptr).unwrap();
        reloc::apply(RelocKind::Abs64, ptr_place, 0, konst_s, 0).unwrap();

        let mut fin = mm.finalize(b).unwrap();
        let caller = fin.take(caller).unwrap();
        assert_eq!(call_i32(&caller), 1235);
        let data = fin.take(ptr).unwrap();
        // SAFETY: the data section is 8 bytes, RW, and nothing else touches it.
        let stored = unsafe { std::ptr::read_unaligned(data.as_ptr() as *const u64) };
        assert_eq!(stored, konst_s);
        // SAFETY: `stored` points at the 4-byte rodata constant, still mapped R.
        assert_eq!(unsafe { *(stored as *const i32) }, 1234);
    }
}

#[cfg(target_os = "linux")]
#[test]
fn no_page_is_ever_writable_and_executable() {
    for mode in MODES {
        let mut mm = manager_in(mode);
        let mut live: Vec<FinalizedSection> = Vec::new();
        let mut seen_code_pages = HashSet::new();
        for round in 0..6 {
            let mut b = mm.begin_batch();
            assert_no_wx("begin");
            let mut refs = Vec::new();
            for i in 0..(round + 2) {
                let size = 40 + i * 1000 * (round % 3);
                for kind in [SectionKind::Text, SectionKind::Rodata, SectionKind::Data] {
                    let r = mm.allocate(&mut b, kind, size, 16).unwrap();
                    b.bytes_mut(r).unwrap().fill(0xc3);
                    assert_eq!(perms_of(b.address(r).unwrap()), open_perms(&mm, kind));
                    let written = b.bytes_mut(r).unwrap().as_ptr() as usize;
                    assert_eq!(&perms_of(written)[..2], "rw", "written where writable");
                    refs.push(r);
                }
                assert_no_wx("allocate");
            }
            let mut fin = mm.finalize(b).unwrap();
            assert_no_wx("finalize");
            for r in refs {
                let s = fin.take(r).unwrap();
                let expected = match s.kind() {
                    SectionKind::Text => "r-x",
                    SectionKind::Rodata => "r--",
                    SectionKind::Data => "rw-",
                };
                assert_eq!(perms_of(s.address()), expected, "{mode:?} round {round}");
                if s.kind() != SectionKind::Data {
                    assert!(s.bytes().unwrap().iter().all(|&x| x == 0xc3));
                }
                if s.kind() == SectionKind::Text {
                    seen_code_pages.insert(page_of(&mm, s.address()));
                }
                live.push(s);
            }
            // Free every other section, oldest first: pages empty out and
            // are reused by the next round.
            let mut keep = Vec::new();
            for (i, s) in live.drain(..).enumerate() {
                if i % 2 == 0 {
                    mm.free(s).unwrap();
                    assert_no_wx("free");
                } else {
                    keep.push(s);
                }
            }
            live = keep;
        }
        for s in live {
            mm.free(s).unwrap();
            assert_no_wx("final free");
        }
        assert_eq!(mm.stats().pages_in_use, 0);
        assert_eq!(mm.stats().bytes_in_use, 0);
        assert!(seen_code_pages.len() > 1);
    }
}

#[test]
fn small_sections_of_a_batch_share_pages() {
    for mode in MODES {
        let mut mm = manager_in(mode);
        let mut b = mm.begin_batch();
        let mut refs = Vec::new();
        for _ in 0..50 {
            for kind in [SectionKind::Text, SectionKind::Rodata, SectionKind::Data] {
                refs.push(mm.allocate(&mut b, kind, 24, 8).unwrap());
            }
        }
        let mut pages_by_kind = std::collections::HashMap::<SectionKind, HashSet<usize>>::new();
        let mut ranges = Vec::new();
        for &r in &refs {
            let a = b.address(r).unwrap();
            pages_by_kind
                .entry(b.kind(r).unwrap())
                .or_default()
                .insert(page_of(&mm, a));
            ranges.push((a, a + 24));
        }
        for (kind, pages) in &pages_by_kind {
            assert_eq!(pages.len(), 1, "50 x 24 bytes of {kind:?} fit one page");
        }
        // Kinds never share a page.
        let all: HashSet<_> = pages_by_kind.values().flatten().collect();
        assert_eq!(all.len(), 3);
        // And sections never overlap.
        ranges.sort();
        for w in ranges.windows(2) {
            assert!(w[0].1 <= w[1].0, "{:x?} overlaps {:x?}", w[0], w[1]);
        }
        mm.finalize(b).unwrap();
        assert_eq!(mm.stats().pages_in_use, 3);
        assert_eq!(mm.stats().bytes_in_use, 150 * 24);
    }
}

/// Two views: modules finalized one at a time share code pages; every one
/// of them still runs after the later ones were written next to it.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
#[test]
fn separately_finalized_modules_share_code_pages() {
    let mut mm = manager();
    assert!(mm.stats().dual_view_reservations == 0);
    let mut live = Vec::new();
    for k in 0..200 {
        let mut b = mm.begin_batch();
        let t = fill(&mut mm, &mut b, SectionKind::Text, &ret_i32(k));
        let c = fill(&mut mm, &mut b, SectionKind::Rodata, &k.to_le_bytes());
        let mut fin = mm.finalize(b).unwrap();
        live.push((k, fin.take(t).unwrap(), fin.take(c).unwrap()));
        assert_no_wx("finalize");
    }
    if !is_dual(&mm) {
        eprintln!("no memfd here: this test needs two views");
        return;
    }
    let text_pages: HashSet<usize> = live
        .iter()
        .map(|(_, t, _)| page_of(&mm, t.address()))
        .collect();
    let ro_pages: HashSet<usize> = live
        .iter()
        .map(|(_, _, c)| page_of(&mm, c.address()))
        .collect();
    // 200 x 16 bytes of text (6 rounded up to the alignment) and 200 x 16
    // of rodata: one page each.
    assert_eq!((text_pages.len(), ro_pages.len()), (1, 1));
    assert_eq!(mm.stats().pages_in_use, 2);
    for (k, t, c) in &live {
        assert_eq!(call_i32(t), *k);
        assert_eq!(c.bytes().unwrap(), &k.to_le_bytes());
    }
}

/// Two views: memory of freed code is reused below page granularity, and
/// reads as zero until written.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
#[test]
fn freed_code_is_reused_within_a_page() {
    let mut mm = manager();
    let mut live = Vec::new();
    for k in 0..64 {
        let mut b = mm.begin_batch();
        let t = fill(&mut mm, &mut b, SectionKind::Text, &ret_i32(k));
        live.push(mm.finalize(b).unwrap().take(t).unwrap());
    }
    if !is_dual(&mm) {
        return;
    }
    let pages = mm.stats().pages_in_use;
    // Free the odd ones; their holes are taken again, one by one.
    let mut holes = Vec::new();
    let mut keep = Vec::new();
    for (k, s) in live.into_iter().enumerate() {
        if k % 2 == 1 {
            holes.push(s.address());
            mm.free(s).unwrap();
        } else {
            keep.push(s);
        }
    }
    assert_eq!(mm.stats().bytes_in_use, 32 * 6);
    let mut again = HashSet::new();
    let mut fresh = Vec::new();
    for k in 0..32 {
        let mut b = mm.begin_batch();
        let r = mm.allocate(&mut b, SectionKind::Text, 6, 16).unwrap();
        assert!(
            b.bytes(r).unwrap().iter().all(|&x| x == 0),
            "freed bytes are zero"
        );
        b.bytes_mut(r).unwrap().copy_from_slice(&ret_i32(1000 + k));
        again.insert(b.address(r).unwrap());
        fresh.push((k, mm.finalize(b).unwrap().take(r).unwrap()));
    }
    assert_eq!(again, holes.into_iter().collect::<HashSet<_>>());
    assert_eq!(mm.stats().pages_in_use, pages);
    for (k, s) in &fresh {
        assert_eq!(call_i32(s), 1000 + k);
    }
    for (k, s) in keep.iter().enumerate() {
        assert_eq!(call_i32(s), 2 * k as i32);
    }
}

/// The fallback can be forced, and then works with `mprotect` alone: no
/// reservation has two views.
#[test]
fn the_mprotect_fallback_can_be_forced() {
    let mut mm = manager_in(CodeMapping::Protect);
    let mut b = mm.begin_batch();
    let r = mm.allocate(&mut b, SectionKind::Text, 6, 16).unwrap();
    b.bytes_mut(r).unwrap().copy_from_slice(&ret_i32(7));
    // The bytes are written where they will run.
    assert_eq!(
        b.bytes_mut(r).unwrap().as_ptr() as usize,
        b.address(r).unwrap()
    );
    let s = mm.finalize(b).unwrap().take(r).unwrap();
    let stats = mm.stats();
    assert_eq!((stats.reservations, stats.dual_view_reservations), (1, 0));
    #[cfg(target_os = "linux")]
    assert_eq!(perms_of(s.address()), "r-x");
    #[cfg(target_arch = "x86_64")]
    assert_eq!(call_i32(&s), 7);
    mm.free(s).unwrap();
    #[cfg(target_os = "linux")]
    {
        // And the default really uses two views here.
        let mut mm = manager();
        let mut b = mm.begin_batch();
        let r = mm.allocate(&mut b, SectionKind::Text, 6, 16).unwrap();
        assert_ne!(
            b.bytes_mut(r).unwrap().as_ptr() as usize,
            b.address(r).unwrap(),
            "written through the other view"
        );
        assert_eq!(mm.stats().dual_view_reservations, 1);
        mm.discard(b).unwrap();
    }
}

#[test]
fn data_pages_are_shared_across_batches() {
    for mode in MODES {
        let mut mm = manager_in(mode);
        let mut b1 = mm.begin_batch();
        let d1 = mm.allocate(&mut b1, SectionKind::Data, 100, 8).unwrap();
        let a1 = b1.address(d1).unwrap();
        let _fin1 = mm.finalize(b1).unwrap();
        let mut b2 = mm.begin_batch();
        let d2 = mm.allocate(&mut b2, SectionKind::Data, 100, 8).unwrap();
        let a2 = b2.address(d2).unwrap();
        assert_eq!(page_of(&mm, a1), page_of(&mm, a2));
        assert!(a2 >= a1 + 100);
        mm.discard(b2).unwrap();
    }
}

/// Protect mode: a page sealed by one batch never takes another's code.
#[test]
fn finalized_code_pages_never_take_new_code() {
    let mut mm = manager_in(CodeMapping::Protect);
    let mut b1 = mm.begin_batch();
    let t1 = mm.allocate(&mut b1, SectionKind::Text, 16, 16).unwrap();
    let r1 = mm.allocate(&mut b1, SectionKind::Rodata, 16, 16).unwrap();
    // A second batch open at the same time gets its own pages...
    let mut b2 = mm.begin_batch();
    let t2 = mm.allocate(&mut b2, SectionKind::Text, 16, 16).unwrap();
    assert_ne!(
        page_of(&mm, b1.address(t1).unwrap()),
        page_of(&mm, b2.address(t2).unwrap())
    );
    let mut fin1 = mm.finalize(b1).unwrap();
    // ...so finalizing the first leaves the second writable.
    b2.bytes_mut(t2).unwrap().fill(0x90);
    #[cfg(target_os = "linux")]
    assert_eq!(perms_of(b2.address(t2).unwrap()), "rw-");
    let text1 = fin1.take(t1).unwrap();
    let ro1 = fin1.take(r1).unwrap();
    // New code after finalizing goes to a page with no finalized code.
    let mut b3 = mm.begin_batch();
    let t3 = mm.allocate(&mut b3, SectionKind::Text, 16, 16).unwrap();
    let r3 = mm.allocate(&mut b3, SectionKind::Rodata, 16, 16).unwrap();
    let p3 = page_of(&mm, b3.address(t3).unwrap());
    assert_ne!(p3, page_of(&mm, text1.address()));
    assert_ne!(
        page_of(&mm, b3.address(r3).unwrap()),
        page_of(&mm, ro1.address())
    );
    let fin2 = mm.finalize(b2).unwrap();
    let fin3 = mm.finalize(b3).unwrap();
    for s in fin2.into_sections().chain(fin3.into_sections()) {
        mm.free(s).unwrap();
    }
    mm.free(text1).unwrap();
    mm.free(ro1).unwrap();
    assert_eq!(mm.stats().pages_in_use, 0);
}

#[test]
fn freed_memory_is_reused() {
    for mode in MODES {
        let mut mm = manager_in(mode);
        let mut b = mm.begin_batch();
        let t = mm.allocate(&mut b, SectionKind::Text, 300, 16).unwrap();
        let d = mm.allocate(&mut b, SectionKind::Data, 300, 16).unwrap();
        let d_keep = mm.allocate(&mut b, SectionKind::Data, 300, 16).unwrap();
        b.bytes_mut(d).unwrap().fill(0x55);
        let mut fin = mm.finalize(b).unwrap();
        let text = fin.take(t).unwrap();
        let data = fin.take(d).unwrap();
        let (text_addr, data_addr) = (text.address(), data.address());
        let in_use = mm.stats().pages_in_use;

        // The text page empties: in Protect mode it returns to the pool,
        // inaccessible; with two views it stays text (its memory given
        // back). The data page keeps `d_keep`, so the freed bytes go to the
        // data free list.
        mm.free(text).unwrap();
        mm.free(data).unwrap();
        assert_eq!(mm.stats().pages_in_use, in_use - 1);
        #[cfg(target_os = "linux")]
        assert_eq!(
            perms_of(text_addr),
            if is_dual(&mm) { "r-x" } else { "---" }
        );
        assert!(mm.stats().data_free_bytes >= 300);

        let mut b = mm.begin_batch();
        let t2 = mm.allocate(&mut b, SectionKind::Text, 200, 16).unwrap();
        let d2 = mm.allocate(&mut b, SectionKind::Data, 300, 16).unwrap();
        assert_eq!(b.address(t2), Some(text_addr), "emptied code page reused");
        assert_eq!(b.address(d2), Some(data_addr), "freed data bytes reused");
        assert!(b.bytes(d2).unwrap().iter().all(|&x| x == 0), "zeroed");
        // The reused page holds no stale bytes.
        assert!(b.bytes(t2).unwrap().iter().all(|&x| x == 0));
        b.bytes_mut(t2).unwrap().fill(0xcc);
        let fin2 = mm.finalize(b).unwrap();
        for s in fin2.into_sections() {
            mm.free(s).unwrap();
        }
        mm.free(fin.take(d_keep).unwrap()).unwrap();
        let stats = mm.stats();
        assert_eq!((stats.pages_in_use, stats.bytes_in_use), (0, 0));
    }
}

/// Empty pages a kind keeps go back to the pool for any kind when the
/// reservation runs out of fresh pages.
#[test]
fn empty_pages_of_one_kind_are_reclaimed_for_another() {
    for mode in MODES {
        let mut mm = small_manager(4, 1, mode);
        let page = mm.page_size();
        for kind in [SectionKind::Data, SectionKind::Rodata, SectionKind::Text] {
            let mut b = mm.begin_batch();
            let r = mm.allocate(&mut b, kind, 4 * page, 16).unwrap();
            b.bytes_mut(r).unwrap().fill(0xcc);
            let s = mm.finalize(b).unwrap().take(r).unwrap();
            mm.free(s).unwrap();
            assert_eq!(mm.stats().pages_in_use, 0, "{mode:?} {kind:?}");
        }
        // Small sections of every kind after the big ones: still room.
        let mut b = mm.begin_batch();
        for kind in [SectionKind::Text, SectionKind::Rodata, SectionKind::Data] {
            let r = mm.allocate(&mut b, kind, 100, 16).unwrap();
            assert!(b.bytes(r).unwrap().iter().all(|&x| x == 0), "zeroed");
        }
        mm.discard(b).unwrap();
        assert_eq!(mm.stats().reservations, 1);
    }
}

/// With two views, taking and freeing a module again and again needs no
/// new pages and keeps no memory: the same addresses come back each time.
#[cfg(target_os = "linux")]
#[test]
fn churn_reuses_the_same_place() {
    let mut mm = manager();
    let mut seen = HashSet::new();
    for k in 0..50u8 {
        let mut b = mm.begin_batch();
        let mut refs = Vec::new();
        for kind in [SectionKind::Text, SectionKind::Rodata, SectionKind::Data] {
            let r = mm.allocate(&mut b, kind, 40, 16).unwrap();
            assert!(b.bytes(r).unwrap().iter().all(|&x| x == 0), "round {k}");
            b.bytes_mut(r).unwrap().fill(k);
            refs.push(b.address(r).unwrap());
        }
        seen.insert(refs);
        for s in mm.finalize(b).unwrap().into_sections() {
            mm.free(s).unwrap();
        }
    }
    assert_eq!(seen.len(), 1, "one place for every round");
    assert_eq!(mm.stats().pages_in_use, 0);
}

#[test]
fn freed_neighbours_coalesce() {
    for mode in MODES {
        let mut mm = manager_in(mode);
        let mut b = mm.begin_batch();
        let anchor = mm.allocate(&mut b, SectionKind::Data, 8, 8).unwrap();
        let parts: Vec<_> = (0..4)
            .map(|_| mm.allocate(&mut b, SectionKind::Data, 64, 64).unwrap())
            .collect();
        let first = b.address(parts[0]).unwrap();
        let mut fin = mm.finalize(b).unwrap();
        // Free out of order; the four 64-byte holes must join into one.
        for i in [2, 0, 3, 1] {
            mm.free(fin.take(parts[i]).unwrap()).unwrap();
        }
        let mut b = mm.begin_batch();
        let big = mm.allocate(&mut b, SectionKind::Data, 256, 64).unwrap();
        assert_eq!(b.address(big), Some(first));
        mm.discard(b).unwrap();
        mm.free(fin.take(anchor).unwrap()).unwrap();
        assert_eq!(mm.stats().pages_in_use, 0);
    }
}

#[test]
fn alignment_is_honoured() {
    for mode in MODES {
        let mut mm = manager_in(mode);
        let page = mm.page_size();
        let mut b = mm.begin_batch();
        for kind in [SectionKind::Text, SectionKind::Rodata, SectionKind::Data] {
            for shift in 0..14 {
                let align = 1usize << shift;
                // An odd size first so the next section must be padded.
                mm.allocate(&mut b, kind, 3, 1).unwrap();
                let r = mm.allocate(&mut b, kind, 5, align).unwrap();
                let a = b.address(r).unwrap();
                assert_eq!(a % align, 0, "{kind:?} aligned to {align} at {a:#x}");
            }
        }
        let r = mm
            .allocate(&mut b, SectionKind::Text, 3 * page, 4 * page)
            .unwrap();
        assert_eq!(b.address(r).unwrap() % (4 * page), 0);
        for bad in [0, 3, 24] {
            assert!(matches!(
                mm.allocate(&mut b, SectionKind::Data, 8, bad),
                Err(Error::Argument(_))
            ));
        }
        mm.discard(b).unwrap();
        assert_eq!(mm.stats().pages_in_use, 0);
    }
}

#[test]
fn zero_sized_sections_have_distinct_addresses() {
    for mode in MODES {
        let mut mm = manager_in(mode);
        let mut b = mm.begin_batch();
        let x = mm.allocate(&mut b, SectionKind::Data, 0, 1).unwrap();
        let y = mm.allocate(&mut b, SectionKind::Text, 0, 1).unwrap();
        let z = mm.allocate(&mut b, SectionKind::Text, 0, 1).unwrap();
        assert_eq!(b.bytes(x).unwrap().len(), 0);
        assert_ne!(b.address(y), b.address(z));
        mm.discard(b).unwrap();
    }
}

#[test]
fn running_out_of_memory_is_an_error() {
    for mode in MODES {
        let mut mm = small_manager(4, 1, mode);
        let page = mm.page_size();
        let mut b = mm.begin_batch();
        // Too big for any reservation.
        assert!(matches!(
            mm.allocate(&mut b, SectionKind::Text, 4 * page + 1, 16),
            Err(Error::Runtime(_))
        ));
        // Fill the one reservation, then ask for one byte more.
        for kind in [SectionKind::Text, SectionKind::Rodata, SectionKind::Data] {
            mm.allocate(&mut b, kind, page, 16).unwrap();
        }
        mm.allocate(&mut b, SectionKind::Data, page, 16).unwrap();
        let e = mm.allocate(&mut b, SectionKind::Text, 1, 1).unwrap_err();
        assert!(
            matches!(e, Error::Runtime(ref m) if m.contains("out of JIT memory")),
            "{e}"
        );
        // Freeing makes room again.
        mm.discard(b).unwrap();
        let mut b = mm.begin_batch();
        mm.allocate(&mut b, SectionKind::Text, 4 * page, 16)
            .unwrap();
        mm.discard(b).unwrap();
        assert_eq!(mm.stats().reservations, 1);
    }
}

#[test]
fn a_full_reservation_spills_into_a_new_one() {
    for mode in MODES {
        let mut mm = small_manager(2, 3, mode);
        let page = mm.page_size();
        let mut b = mm.begin_batch();
        let x = mm
            .allocate(&mut b, SectionKind::Text, 2 * page, 16)
            .unwrap();
        let y = mm.allocate(&mut b, SectionKind::Text, 16, 16).unwrap();
        let (ax, ay) = (b.address(x).unwrap(), b.address(y).unwrap());
        let (rx, ry) = (b.reservation(x).unwrap(), b.reservation(y).unwrap());
        assert_ne!(rx, ry);
        assert_eq!(mm.reservation_of(ax), Some(rx));
        assert_eq!(mm.reservation_of(ay), Some(ry));
        assert_eq!(mm.reservation_of(ax + 2 * page - 1), Some(rx));
        assert_eq!(mm.stats().reservations, 2);
        let (base, len) = mm.reservation_range(rx).unwrap();
        assert_eq!(len, 2 * page);
        assert!((base..base + len).contains(&ax));
        assert!(within_rel32(base, base + len - 1));
        let fin = mm.finalize(b).unwrap();
        for s in fin.into_sections() {
            mm.free(s).unwrap();
        }
    }
}

#[test]
fn invalid_configurations_are_rejected() {
    for (size, max) in [
        (0, 1),
        (MemoryConfig::MAX_RESERVATION + 1, 1),
        (usize::MAX, 1),
        (1 << 20, 0),
    ] {
        let e = MemoryManager::new(MemoryConfig {
            reservation_size: size,
            max_reservations: max,
            ..Default::default()
        });
        assert!(matches!(e, Err(Error::Argument(_))), "{size} {max}");
    }
    let mm = MemoryManager::new(MemoryConfig {
        reservation_size: 1,
        max_reservations: 1,
        ..Default::default()
    })
    .unwrap();
    assert_eq!(mm.config().reservation_size, mm.page_size());
}

#[test]
fn handles_of_another_manager_are_refused() {
    let mut a = manager();
    let mut b = manager();
    let mut batch = a.begin_batch();
    assert!(b.allocate(&mut batch, SectionKind::Data, 8, 8).is_err());
    let r = a.allocate(&mut batch, SectionKind::Data, 8, 8).unwrap();
    let mut other = a.begin_batch();
    assert_eq!(other.address(r), None, "a reference of another batch");
    assert!(other.set_target_address(r, 0).is_err());
    assert!(b.finalize(batch).is_err());
    let mut batch = a.begin_batch();
    let r = a.allocate(&mut batch, SectionKind::Data, 8, 8).unwrap();
    let s = a.finalize(batch).unwrap().take(r).unwrap();
    assert!(b.free(s).is_err());
    a.discard(other).unwrap();
}

/// Relocating for a remote executor: the bytes sit here, P is elsewhere.
#[test]
fn relocation_uses_the_target_address() {
    for mode in MODES {
        let mut mm = manager_in(mode);
        let mut b = mm.begin_batch();
        let t = fill(&mut mm, &mut b, SectionKind::Text, &[0xe8, 0, 0, 0, 0]);
        let remote = 0x7000_0000_0000u64;
        b.set_target_address(t, remote).unwrap();
        assert_eq!(b.target_address(t), Some(remote));
        let p = b.target_address(t).unwrap() + 1;
        let place = &mut b.bytes_mut(t).unwrap()[1..];
        reloc::apply(RelocKind::X86PcRel32, place, p, remote + 0x105, -4).unwrap();
        assert_eq!(&b.bytes(t).unwrap()[1..], &0x100i32.to_le_bytes());
        let s = mm.finalize(b).unwrap().take(t).unwrap();
        assert_eq!(s.target_address(), remote);
        mm.free(s).unwrap();
    }
}

#[test]
fn relocation_errors_leave_the_code_alone() {
    let mut code = [0xe8, 1, 2, 3, 4];
    let e = reloc::apply(RelocKind::X86PcRel32, &mut code[1..], 0, 1 << 40, 0).unwrap_err();
    assert_eq!(e.kind, RelocKind::X86PcRel32);
    assert!(matches!(e.problem, RelocProblem::OutOfRange { .. }));
    assert_eq!(code, [0xe8, 1, 2, 3, 4]);
    let msg = Error::from(e).to_string();
    assert!(msg.contains("out of range"), "{msg}");
}

#[test]
fn the_manager_moves_between_threads() {
    let mm = std::sync::Mutex::new(manager());
    let addr = std::thread::scope(|s| {
        s.spawn(|| {
            let mut mm = mm.lock().unwrap();
            let mut b = mm.begin_batch();
            let r = mm.allocate(&mut b, SectionKind::Data, 8, 8).unwrap();
            let a = b.address(r).unwrap();
            let s = mm.finalize(b).unwrap().take(r).unwrap();
            mm.free(s).unwrap();
            a
        })
        .join()
        .unwrap()
    });
    let mut mm = mm.into_inner().unwrap();
    let mut b = mm.begin_batch();
    let r = mm.allocate(&mut b, SectionKind::Data, 8, 8).unwrap();
    assert_eq!(b.address(r), Some(addr));
    mm.discard(b).unwrap();
}

/// A `fork` child shares its parent's code file: the manager refuses to
/// write through it there, instead of overwriting the parent's code.
#[cfg(target_os = "linux")]
#[test]
fn a_forked_child_cannot_write_its_parents_code() {
    let mut mm = manager();
    let mut b = mm.begin_batch();
    let r = fill(&mut mm, &mut b, SectionKind::Text, &ret_i32(5));
    let s = mm.finalize(b).unwrap().take(r).unwrap();
    if !is_dual(&mm) {
        return;
    }
    // SAFETY: the child only calls the manager (which fails before
    // touching memory or locks other threads may hold, bar malloc, which
    // glibc makes fork-safe).
    let refused = unsafe {
        passes_in_forked_child(|| {
            let mut b = mm.begin_batch();
            mm.allocate(&mut b, SectionKind::Text, 8, 8).is_err()
        })
    };
    assert!(refused, "the child wrote through its parent's code file");
    // The parent goes on.
    let mut b = mm.begin_batch();
    let r = mm.allocate(&mut b, SectionKind::Text, 8, 8).unwrap();
    mm.discard(b).unwrap();
    let _ = r;
    mm.free(s).unwrap();
}

/// `m{k}`: `@g{k}() -> i64` returning `k` plus a constant from rodata
/// and a counter in data, so each module has all three kinds.
fn tiny_module(k: usize) -> String {
    format!(
        "const @c{k} = {{ i64 {k} }}\ndata @d{k} = {{ i64 0 }}\n\
         func @g{k}() -> i64 {{\nentry:\n    %p = addr @c{k}\n    %v = load.i64 %p\n    \
         %q = addr @d{k}\n    %n = load.i64 %q\n    %m = add.i64 %n, 1\n    store.i64 %m, %q\n    \
         %r = add.i64 %v, %m\n    ret %r\n}}\n"
    )
}

/// Through the whole engine, in both modes: 300 modules, each finalized
/// on its own, all callable, never a W+X mapping; with two views they
/// share a handful of pages (one per kind, per 4 KiB of each), where the
/// page-granular fallback needs pages per module.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
#[test]
fn many_small_modules_through_the_registry() {
    use kiln::executor::InProcessExecutor;
    use kiln::registry::Registry;
    use std::sync::Arc;
    let mut pages = Vec::new();
    for mode in MODES {
        let ex = Arc::new(InProcessExecutor::new(None).unwrap());
        let config = MemoryConfig {
            mapping: mode,
            ..Default::default()
        };
        let mut reg = Registry::new("x86_64", ex.clone(), config).unwrap();
        for k in 0..300 {
            let m = kiln::ir::parse::parse_module(&format!("m{k}.kir"), &tiny_module(k)).unwrap();
            let id = reg.add(m).unwrap();
            reg.finalize_from(&[id]).unwrap();
        }
        assert_no_wx("300 modules");
        for k in [0, 1, 150, 299] {
            let (addr, _, _pin) = reg.function(&format!("g{k}")).unwrap();
            // SAFETY: `@g{k}` is a finalized `() -> i64` kept by `reg`.
            let f: extern "C" fn() -> i64 = unsafe { std::mem::transmute(addr as usize) };
            assert_eq!(f(), k as i64 + 1);
            assert_eq!(f(), k as i64 + 2, "its data is writable");
        }
        let stats = reg.memory().stats();
        assert_eq!(
            stats.dual_view_reservations > 0,
            mode == CodeMapping::DualView
        );
        pages.push(stats.pages_in_use);
    }
    // Two views: 300 x (text ~48 + rodata 8 + data 8 bytes) fit a few
    // pages; the fallback seals a text and a rodata page per module.
    assert!(pages[0] <= 20, "dual view: {} pages", pages[0]);
    assert!(pages[1] >= 600, "protect: {} pages", pages[1]);
}

/// A config whose reservation size no other test uses, so that the
/// process-wide pool of released reservations (bounded per size) holds
/// only this test's reservations of that size.
fn pool_config(pages: usize, mapping: CodeMapping) -> MemoryConfig {
    let page = manager().page_size();
    MemoryConfig {
        reservation_size: pages * page,
        max_reservations: 4,
        mapping,
    }
}

/// A prepared manager of `config`.
fn prepared(config: MemoryConfig) -> MemoryManager {
    let mut mm = MemoryManager::new(config).unwrap();
    mm.prepare().unwrap();
    mm
}

/// Places a `len`-byte section of `kind` in `b` and returns it with its
/// reservation's range.
fn place(
    mm: &mut MemoryManager,
    b: &mut LoadBatch,
    kind: SectionKind,
    len: usize,
) -> (SectionRef, (usize, usize)) {
    let r = mm.allocate(b, kind, len, mm.page_size()).unwrap();
    let range = mm.reservation_range(b.reservation(r).unwrap()).unwrap();
    (r, range)
}

/// A prepared dual-view reservation whose manager is dropped (its section
/// handles dropped first, unfreed, as an engine drops its modules) goes
/// to the pool, and the next prepared manager of the same size takes it:
/// same range, the same free space as a fresh prepared manager, every
/// byte of every chunk zero although the first manager wrote text, rodata
/// and data across several pages, nothing writable and executable, and
/// code placed there runs. A manager that switches to the `mprotect`
/// fallback before using its reservation gives it to the pool too, and
/// works on with a fallback reservation; `release_pooled` empties the pool.
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
#[test]
fn released_reservations_are_reused_clean() {
    let config = pool_config(4099, CodeMapping::DualView);
    let mut a = prepared(config);
    if !is_dual(&a) {
        return;
    }
    let page = a.page_size();
    let mut b = a.begin_batch();
    let (t, range) = place(&mut a, &mut b, SectionKind::Text, 3 * page + 5);
    let (r, _) = place(&mut a, &mut b, SectionKind::Rodata, page + 9);
    let (d, _) = place(&mut a, &mut b, SectionKind::Data, 2 * page + 1);
    for (s, v) in [(t, 0xc3), (r, 0xab), (d, 0x5a)] {
        b.bytes_mut(s).unwrap().fill(v);
    }
    let fin = a.finalize(b).unwrap();
    let data = fin.get(d).unwrap().as_ptr() as *mut u8;
    // SAFETY: the data section is RW where it runs and 2 pages + 1 long;
    // running code would write it so.
    unsafe { data.add(page).write(7) };
    drop(fin);
    drop(a);

    let mut b = prepared(config);
    let fresh = prepared(config);
    assert_eq!(
        b.stats(),
        fresh.stats(),
        "starts as a fresh prepared manager"
    );
    let mut batch = b.begin_batch();
    let chunk = 16 * page;
    for kind in [SectionKind::Text, SectionKind::Rodata, SectionKind::Data] {
        let len = if kind == SectionKind::Data {
            b.stats().data_free_bytes
        } else {
            chunk
        };
        let (s, got) = place(&mut b, &mut batch, kind, len);
        assert_eq!(got, range, "{kind:?}: the pooled reservation");
        assert!(
            batch.bytes(s).unwrap().iter().all(|&x| x == 0),
            "{kind:?}: a pooled chunk reads as zero"
        );
    }
    b.discard(batch).unwrap();
    assert_no_wx("reusing a pooled reservation");
    let mut batch = b.begin_batch();
    let s = fill(&mut b, &mut batch, SectionKind::Text, &ret_i32(9));
    assert_eq!(batch.address(s), Some(range.0), "its text chunk");
    let text = b.finalize(batch).unwrap().take(s).unwrap();
    assert_eq!(call_i32(&text), 9);
    b.free(text).unwrap();
    drop(b);

    // Prepared, then switched to the fallback before any section: its
    // reservation goes to the pool (taken by the next dual-view manager)
    // and the fallback works.
    let mut p = prepared(config);
    assert!(is_dual(&p));
    p.set_mapping(CodeMapping::Protect);
    let mut c = prepared(config);
    let mut batch = c.begin_batch();
    let (s, got) = place(&mut c, &mut batch, SectionKind::Text, 8);
    let _ = s;
    c.discard(batch).unwrap();
    let mut batch = p.begin_batch();
    let s = fill(&mut p, &mut batch, SectionKind::Text, &ret_i32(4));
    let text = p.finalize(batch).unwrap().take(s).unwrap();
    assert_eq!((call_i32(&text), is_dual(&p)), (4, false));
    assert!(!(got.0..got.0 + got.1).contains(&text.address()));
    p.free(text).unwrap();
    assert_no_wx("the fallback after pooling");
    drop((c, fresh, p));
    assert!(kiln::memory::release_pooled() >= 2);
}

/// A reservation that a section handle still refers to when its manager
/// is dropped is not pooled: the section keeps its bytes and runs, and the
/// next manager of that size gets another reservation.
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
#[test]
fn referenced_reservations_are_not_pooled() {
    let config = pool_config(4101, CodeMapping::DualView);
    let mut a = prepared(config);
    let mut b = a.begin_batch();
    let s = fill(&mut a, &mut b, SectionKind::Text, &ret_i32(5));
    let text = a.finalize(b).unwrap().take(s).unwrap();
    drop(a);
    let mut n = prepared(config);
    let mut b = n.begin_batch();
    let (_, range) = place(&mut n, &mut b, SectionKind::Text, 8);
    n.discard(b).unwrap();
    assert!(!(range.0..range.0 + range.1).contains(&text.address()));
    assert_eq!(text.bytes(), Some(&ret_i32(5)[..]));
    assert_eq!(call_i32(&text), 5);
}

/// A registry (an engine's) pools its reservation when dropped: it drops
/// its modules' section handles before its memory manager, so the next
/// registry of the same memory configuration loads into the same
/// reservation, with no system call.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
#[test]
fn a_dropped_registry_leaves_its_reservation_to_the_next() {
    use kiln::executor::InProcessExecutor;
    use kiln::registry::Registry;
    use std::sync::Arc;
    let ex = Arc::new(InProcessExecutor::new(None).unwrap());
    let config = pool_config(4103, CodeMapping::DualView);
    let mut addrs = Vec::new();
    for k in 0..2 {
        let mut reg = Registry::new("x86_64", ex.clone(), config).unwrap();
        if reg.memory().stats().dual_view_reservations == 0 {
            return;
        }
        let m = kiln::ir::parse::parse_module("m.kir", &tiny_module(k)).unwrap();
        let id = reg.add(m).unwrap();
        reg.finalize_from(&[id]).unwrap();
        let (addr, _, _pin) = reg.function(&format!("g{k}")).unwrap();
        // SAFETY: `@g{k}` is a finalized `() -> i64` kept by `reg`.
        let f: extern "C" fn() -> i64 = unsafe { std::mem::transmute(addr as usize) };
        assert_eq!(f(), k as i64 + 1, "its data starts at zero");
        addrs.push(addr as usize);
        if let Some(&first) = addrs.first() {
            assert!(reg.memory().reservation_of(first).is_some());
        }
    }
}

/// The pool keeps at most `POOL_MAX` reservations of a size, and only
/// ones that start with the prepared layout: a reservation whose manager
/// never prepared it is unmapped; one that grew past its prepared chunks
/// is pooled (see tests/pool.rs).
#[cfg(target_os = "linux")]
#[test]
fn the_pool_is_bounded_and_takes_only_prepared_reservations() {
    use kiln::memory::{pooled_reservations, POOL_MAX};
    let config = pool_config(4111, CodeMapping::DualView);
    let size = config.reservation_size;
    let probe = prepared(config);
    if !is_dual(&probe) {
        return;
    }
    drop(probe);
    assert_eq!(pooled_reservations(size), 1);
    let many: Vec<MemoryManager> = (0..POOL_MAX + 2).map(|_| prepared(config)).collect();
    assert_eq!(pooled_reservations(size), 0, "taken by the first");
    drop(many);
    assert_eq!(pooled_reservations(size), POOL_MAX);

    // Never prepared (its first allocation reserved it): not pooled,
    // although the pool has room.
    let mut grown = prepared(config);
    assert_eq!(pooled_reservations(size), POOL_MAX - 1);
    let mut plain = MemoryManager::new(config).unwrap();
    let mut b = plain.begin_batch();
    fill(&mut plain, &mut b, SectionKind::Text, &ret_i32(1));
    plain.discard(b).unwrap();
    drop(plain);
    assert_eq!(pooled_reservations(size), POOL_MAX - 1);

    // Grown past the prepared text chunk: pooled.
    let mut b = grown.begin_batch();
    let page = grown.page_size();
    let r = grown
        .allocate(&mut b, SectionKind::Text, 20 * page, 16)
        .unwrap();
    let _ = r;
    grown.discard(b).unwrap();
    drop(grown);
    assert_eq!(pooled_reservations(size), POOL_MAX);
    // The pool is full: one more is unmapped.
    let extra: Vec<MemoryManager> = (0..POOL_MAX + 1).map(|_| prepared(config)).collect();
    drop(extra);
    assert_eq!(pooled_reservations(size), POOL_MAX);
}
