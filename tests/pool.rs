//! The process-wide pool of released reservations (`src/memory/pool.rs`)
//! and the trimming of writable views (`src/memory/trim.rs`), through the
//! public API: a reservation that grew past its prepared chunks is pooled
//! and handed out clean, the pool's limits hold, a `fork` child neither
//! gives nor takes, and the writable view of a dual-view reservation is
//! unmapped one trim after it was written.
//!
//! Every test uses a reservation size of its own, so that the pool (bounded
//! per size) and `/proc/self/smaps` show only its own reservations.
#![cfg(all(target_os = "linux", target_arch = "x86_64"))]

use kiln::memory::{
    pooled_reservations, CodeMapping, FinalizedSection, LoadBatch, MemoryConfig, MemoryManager,
    SectionKind, SectionRef, POOL_KEEP, ZERO_LIMIT,
};

mod memory_support;
use memory_support::{assert_no_wx, passes_in_forked_child};

fn page() -> usize {
    MemoryManager::new(MemoryConfig::default())
        .unwrap()
        .page_size()
}

/// A dual-view config of `pages` pages.
fn config(pages: usize) -> MemoryConfig {
    MemoryConfig {
        reservation_size: pages * page(),
        max_reservations: 4,
        mapping: CodeMapping::DualView,
    }
}

/// A prepared manager of `config`, or `None` where there is no memfd (then
/// nothing is ever pooled).
fn prepared(config: MemoryConfig) -> Option<MemoryManager> {
    let mut mm = MemoryManager::new(config).unwrap();
    mm.prepare().unwrap();
    (mm.stats().dual_view_reservations > 0).then_some(mm)
}

/// `mov eax, imm32; ret`
fn ret_i32(v: i32) -> Vec<u8> {
    let mut code = vec![0xb8];
    code.extend_from_slice(&v.to_le_bytes());
    code.push(0xc3);
    code
}

/// Places `len` bytes of `kind`, page-aligned, filled with `fill`.
fn place(mm: &mut MemoryManager, b: &mut LoadBatch, kind: SectionKind, len: usize) -> SectionRef {
    let r = mm.allocate(b, kind, len, mm.page_size()).unwrap();
    b.bytes_mut(r).unwrap().fill(0xcc);
    r
}

/// Calls finalized `extern "C" fn() -> i32` code.
fn call_i32(s: &FinalizedSection) -> i32 {
    assert_eq!(s.kind(), SectionKind::Text);
    // SAFETY: every caller passes a section starting with a complete
    // `extern "C" fn() -> i32`, R+X while `s` is alive.
    let f: extern "C" fn() -> i32 = unsafe { std::mem::transmute(s.as_ptr()) };
    f()
}

/// A text section of `len` bytes that returns `v` (the rest `int3`).
fn code(mm: &mut MemoryManager, b: &mut LoadBatch, len: usize, v: i32) -> SectionRef {
    let r = place(mm, b, SectionKind::Text, len);
    let f = ret_i32(v);
    b.bytes_mut(r).unwrap()[..f.len()].copy_from_slice(&f);
    r
}

/// A manager whose text grew past its prepared chunk (a big module's
/// code), dropped with its section handles unfreed as an engine drops its
/// modules, is pooled; the next manager of its size takes it: the same
/// reservation, the big chunk free again at the same place (no new
/// mapping), every byte zero, code placed there runs, and no mapping is
/// writable and executable.
#[test]
fn a_reservation_grown_past_its_first_chunk_is_pooled_and_reused_clean() {
    let config = config(4201);
    let size = config.reservation_size;
    let page = page();
    let Some(mut a) = prepared(config) else {
        return;
    };
    let free0 = a.stats().code_free_bytes;
    let mut b = a.begin_batch();
    let big = code(&mut a, &mut b, 40 * page + 5, 7);
    let ro = place(&mut a, &mut b, SectionKind::Rodata, 3 * page);
    let data = place(&mut a, &mut b, SectionKind::Data, 2 * page);
    let (big_at, range) = (
        b.address(big).unwrap(),
        a.reservation_range(b.reservation(big).unwrap()).unwrap(),
    );
    let fin = a.finalize(b).unwrap();
    assert_eq!(call_i32(fin.get(big).unwrap()), 7);
    let (_ro, _data) = (fin.get(ro).unwrap(), fin.get(data).unwrap());
    // Every text and rodata byte: free, or the two sections'.
    let code_bytes = a.stats().code_free_bytes + (40 * page + 5) + 3 * page;
    assert!(
        code_bytes > free0 + 40 * page,
        "grown past the prepared chunks"
    );
    drop(fin);
    drop(a);
    assert_eq!(pooled_reservations(size), 1, "pooled although grown");

    let mut n = prepared(config).unwrap();
    assert_eq!(pooled_reservations(size), 0, "taken");
    assert_eq!(n.stats().bytes_in_use, 0);
    assert_eq!(
        n.stats().code_free_bytes,
        code_bytes,
        "every text and rodata page free again, the grown chunk included"
    );
    let mut b = n.begin_batch();
    let again = place(&mut n, &mut b, SectionKind::Text, 40 * page + 5);
    assert_eq!(b.address(again), Some(big_at), "the grown chunk, reused");
    assert_eq!(
        n.reservation_range(b.reservation(again).unwrap()),
        Some(range)
    );
    n.discard(b).unwrap();
    for kind in [SectionKind::Text, SectionKind::Rodata, SectionKind::Data] {
        let mut b = n.begin_batch();
        let len = match kind {
            SectionKind::Data => n.stats().data_free_bytes,
            _ => 40 * page,
        };
        let r = n.allocate(&mut b, kind, len, page).unwrap();
        assert!(
            b.bytes(r).unwrap().iter().all(|&x| x == 0),
            "{kind:?} reads as zero"
        );
        n.discard(b).unwrap();
    }
    let mut b = n.begin_batch();
    let r = code(&mut n, &mut b, 40 * page + 5, 9);
    let fin = n.finalize(b).unwrap();
    assert_eq!(fin.get(r).unwrap().address(), big_at);
    assert_eq!(call_i32(fin.get(r).unwrap()), 9);
    assert_no_wx("reusing a grown pooled reservation");
    drop(fin);
    drop(n);
    assert_eq!(pooled_reservations(size), 1);
}

/// A manager whose pages holding sections are more than `ZERO_LIMIT`
/// bytes is not pooled; the pool keeps at most `POOL_KEEP` bytes of such
/// pages in all (three managers of 3/8 of `POOL_KEEP` each: the third is
/// unmapped).
#[test]
fn the_pool_keeps_limited_memory() {
    let page = page();
    let config = config(8209);
    let size = config.reservation_size;
    let Some(mut big) = prepared(config) else {
        return;
    };
    let mut b = big.begin_batch();
    let _ = place(&mut big, &mut b, SectionKind::Text, ZERO_LIMIT + page);
    drop(big.finalize(b).unwrap());
    drop(big);
    assert_eq!(pooled_reservations(size), 0, "over ZERO_LIMIT");

    let each = POOL_KEEP / 8 * 3;
    assert!(each <= ZERO_LIMIT && 2 * each <= POOL_KEEP && 3 * each > POOL_KEEP);
    let managers: Vec<MemoryManager> = (0..3)
        .map(|_| {
            let mut mm = prepared(config).unwrap();
            let mut b = mm.begin_batch();
            let _ = place(&mut mm, &mut b, SectionKind::Text, each);
            drop(mm.finalize(b).unwrap());
            mm
        })
        .collect();
    drop(managers);
    // Other tests of this binary keep far less than 2 MiB in the pool.
    assert_eq!(pooled_reservations(size), 2, "POOL_KEEP");
    // Zero pages a manager took over and left unused still count: two
    // managers take the two pooled reservations, one places a small
    // section, both are pooled again (`each` bytes each still), and a third
    // with `each` bytes of its own does not fit.
    let mut x = prepared(config).unwrap();
    let y = prepared(config).unwrap();
    let mut z = prepared(config).unwrap();
    assert_eq!(pooled_reservations(size), 0);
    let mut b = x.begin_batch();
    let _ = place(&mut x, &mut b, SectionKind::Text, 2 * page);
    drop(x.finalize(b).unwrap());
    let mut b = z.begin_batch();
    let _ = place(&mut z, &mut b, SectionKind::Text, each);
    drop(z.finalize(b).unwrap());
    drop((x, y));
    assert_eq!(pooled_reservations(size), 2);
    drop(z);
    assert_eq!(pooled_reservations(size), 2, "the unused zero pages count");
}

/// The start of the reservation a manager places its first section in.
fn first_base(mm: &mut MemoryManager) -> Option<usize> {
    let mut b = mm.begin_batch();
    let r = mm.allocate(&mut b, SectionKind::Text, 8, 8).ok()?;
    let base = mm.reservation_range(b.reservation(r)?)?.0;
    mm.discard(b).ok()?;
    Some(base)
}

/// A `fork` child neither takes a reservation its parent pooled nor pools
/// its own: its prepared manager gets a fresh reservation, and dropping it
/// leaves the pool alone; the parent's pooled reservation is still there.
#[test]
fn nothing_is_pooled_in_a_forked_child() {
    let config = config(4211);
    let size = config.reservation_size;
    let Some(mut mm) = prepared(config) else {
        return;
    };
    let pooled_base = first_base(&mut mm).unwrap();
    drop(mm);
    assert_eq!(pooled_reservations(size), 1);
    // SAFETY: the child makes and drops a manager (malloc, which glibc
    // makes fork-safe, and system calls; the pool's lock is not taken in
    // a child).
    let child_ok = unsafe {
        passes_in_forked_child(|| {
            (|| {
                if pooled_reservations(size) != 0 {
                    return None;
                }
                let mut mm = MemoryManager::new(config).ok()?;
                mm.prepare().ok()?;
                let fresh = first_base(&mut mm)? != pooled_base;
                drop(mm);
                Some(fresh && pooled_reservations(size) == 0)
            })()
            .unwrap_or(false)
        })
    };
    assert!(child_ok, "the child took or pooled a reservation");
    assert_eq!(pooled_reservations(size), 1, "the parent's, untouched");
}

/// Resident bytes of the writable view of the one dual-view reservation of
/// `size` bytes (the shared read-write mapping of a `kiln-code` memfd of
/// that size), from `/proc/self/smaps`.
fn view_rss(size: usize) -> usize {
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
    let mut found = None;
    let mut lines = smaps.lines();
    while let Some(line) = lines.next() {
        let mut f = line.split_whitespace();
        let (Some(range), Some(perms)) = (f.next(), f.next()) else {
            continue;
        };
        let Some((lo, hi)) = range.split_once('-') else {
            continue;
        };
        let (Ok(lo), Ok(hi)) = (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
        else {
            continue;
        };
        if perms != "rw-s" || hi - lo != size || !line.contains("kiln-code") {
            continue;
        }
        let rss = lines
            .by_ref()
            .find_map(|l| l.strip_prefix("Rss:"))
            .and_then(|v| v.trim().strip_suffix("kB")?.trim().parse::<usize>().ok())
            .unwrap();
        assert!(found.is_none(), "two writable views of {size} bytes");
        found = Some(rss * 1024);
    }
    found.expect("the writable view")
}

/// The writable view keeps the module just finalized mapped (an engine that
/// loads one big module makes no trim) and unmaps it one trim later; many
/// small modules keep only about two trims' worth mapped.
#[test]
fn the_writable_view_is_trimmed_one_trim_late() {
    let page = page();
    let config = config(4217);
    let size = config.reservation_size;
    let Some(mut mm) = prepared(config) else {
        return;
    };
    let mut sections = Vec::new();
    let mut b = mm.begin_batch();
    let r = place(&mut mm, &mut b, SectionKind::Text, 40 * page);
    sections.push(mm.finalize(b).unwrap().take(r).unwrap());
    assert!(view_rss(size) >= 40 * page, "just written: still mapped");
    let mut b = mm.begin_batch();
    let r = place(&mut mm, &mut b, SectionKind::Text, 60 * page);
    sections.push(mm.finalize(b).unwrap().take(r).unwrap());
    let rss = view_rss(size);
    // (A fault-around window of it next to the first may go too.)
    assert!(
        (40 * page..=60 * page).contains(&rss),
        "the first module trimmed, the second mapped: {rss}"
    );
    // 1 MiB in modules of 100 bytes.
    for _ in 0..(1 << 20) / 100 {
        let mut b = mm.begin_batch();
        let r = mm.allocate(&mut b, SectionKind::Text, 100, 16).unwrap();
        b.bytes_mut(r).unwrap().fill(0xc3);
        sections.push(mm.finalize(b).unwrap().take(r).unwrap());
    }
    let rss = view_rss(size);
    assert!(rss <= 200 << 10, "about two trims' worth mapped: {rss}");
    for s in sections {
        mm.free(s).unwrap();
    }
}
