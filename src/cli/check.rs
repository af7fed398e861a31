//! `kiln check FILE...`: reads, parses and verifies every file; the first
//! error in command-line order is the one printed.
//!
//! Many regular files are checked side by side, one thread per processor
//! (up to one per [`TEXT_PER_THREAD`] bytes of text), each thread taking
//! the next unclaimed file, largest first; otherwise the same driver runs
//! on this thread alone, taking the files in command-line order and
//! stopping at the first failure. The outcome is the sequential one: the
//! result of file `k` is looked at only once every file before it has
//! passed, so the error printed is always that of the first failing
//! file in command-line order, and nothing is printed for the files after
//! it (a thread may have read them; no file after a known failure is
//! started). A panic while checking a file is re-raised on the main
//! thread when its turn comes, as if that file had been checked there.
//! Files that are not regular (pipes, devices, missing paths) make the
//! whole command sequential: reading them has effects (a pipe is read
//! once) and their order must stay the command line's.
//!
//! A regular file of at least [`SPLIT_MIN`] bytes that holds most of the
//! text (a single large file) is parsed on two threads, cut at function
//! boundaries ([`kiln::ir::parse::parse_module_split`], whose outcome, an
//! error included, is that of the one-thread parse).

use super::commands::{load_file, may_keep_open, open_at, with_c_name, Opening};
use super::Failure;
use kiln::ir::parse::SPLIT_MIN;
use std::ffi::{OsStr, OsString};
use std::os::fd::{FromRawFd, IntoRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{
    AtomicBool, AtomicUsize,
    Ordering::{Acquire, Relaxed, Release},
};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Bytes of text from which `check` backs its arena with huge pages from
/// the start.
const LARGE_INPUT: u64 = 64 << 10;

/// Bytes of text worth one more thread: starting a thread costs about as
/// much as parsing a few KiB, and the threads share the files' work.
const TEXT_PER_THREAD: u64 = 32 << 10;

/// `kiln check FILE...`
pub fn check(files: Vec<OsString>) -> Result<(), Failure> {
    share_processors();
    // The process exits next: freeing every function's tables one by one
    // would only cost time (a fifth of `check` on many small functions),
    // and so would a general-purpose allocator for tables never freed.
    // The parsed IR takes about eight times the text's bytes: from 64 KiB
    // of text on, huge pages pay for themselves (see `arena::enable`). One
    // `stat` per file says how much text there is (and the reads then
    // need no `fstat`).
    let at = places(&files);
    let n = files.len();
    let size = |k: usize| match at[k] {
        Some((dir, i)) => regular_size_at(dir, &files[k].as_bytes()[i..]),
        None => std::fs::metadata(&files[k])
            .ok()
            .filter(|m| m.is_file())
            .map(|m| m.len()),
    };
    // Allocated before a worker may switch the arena on (see `Early`).
    let mut sizes: Vec<Option<u64>> = vec![None; n];
    let mut cpus = 0;
    let mut early = None;
    // Files opened while waiting for the early worker, and the order to
    // open them in (see `open_while_waiting`); allocated before the worker
    // may switch the arena on, as `sizes` is.
    let mut opened: Vec<Option<RawFd>> = Vec::new();
    let mut by_size: Vec<usize> = Vec::new();
    // Every `stride`-th file first, as a sample of the text (see `Early`).
    let stride = n / EARLY_SAMPLE;
    let sampled =
        |k: usize| n >= EARLY_FILES && k.is_multiple_of(stride) && k / stride < EARLY_SAMPLE;
    if n >= EARLY_FILES {
        let mut seen = 0;
        for k in (0..n).filter(|&k| sampled(k)) {
            sizes[k] = size(k);
            seen += sizes[k].unwrap_or(0);
        }
        if seen.saturating_mul(n as u64) / EARLY_SAMPLE as u64 >= LARGE_INPUT {
            cpus = processors();
            opened = vec![None; n];
            by_size = Vec::with_capacity(n);
            early = Early::start(cpus);
        }
    }
    for k in (0..n).filter(|&k| !sampled(k)) {
        sizes[k] = size(k);
    }
    if early.is_some() {
        open_while_waiting(&files, &at, &sizes, &mut by_size, &mut opened);
        // This thread's next allocation is the arena's (see `Early`).
        super::arena::claim_first_touch();
    }
    let text: u64 = sizes.iter().flatten().sum();
    // The file to parse on two threads, if any (see the module docs).
    let largest = (0..files.len()).max_by_key(|&k| sizes[k]);
    let split_candidate =
        largest.filter(|&k| sizes[k].is_some_and(|n| n >= SPLIT_MIN as u64 && 2 * n > text));
    if cpus == 0 {
        cpus = if files.len() > 1 || split_candidate.is_some() {
            processors()
        } else {
            1
        };
    }
    let split = split_candidate.filter(|_| cpus > 1);
    if split.is_some() {
        one_heap();
    }
    // A worker already started is worth using whatever the text.
    let per_thread = if early.is_some() {
        2 * TEXT_PER_THREAD
    } else {
        0
    };
    let threads = thread_count(&sizes, text.max(per_thread), cpus);
    let large = text >= LARGE_INPUT || early.is_some();
    check_files(files, at, opened, sizes, threads, large, split, early)
}

/// Whether worker threads start on another processor than the thread
/// that starts them ([`Elsewhere`]); set by [`share_processors`].
static PLACE_ELSEWHERE: AtomicBool = AtomicBool::new(false);

/// Lets workers start on another processor ([`Elsewhere`]) under the
/// normal scheduling policy (`SCHED_OTHER`). Other policies (batch, idle,
/// real-time) are left to the scheduler: a real-time thread starts on an
/// idle processor anyway.
fn share_processors() {
    // SAFETY: sched_getscheduler only reads this thread's policy.
    if unsafe { libc::sched_getscheduler(0) } == libc::SCHED_OTHER {
        PLACE_ELSEWHERE.store(true, Relaxed);
    }
}

/// Whether a processor is idle now: fewer tasks are runnable (running or
/// waiting to, this thread included) than `cpus`, the processors this
/// process may run on (the fourth field of `/proc/loadavg`). On a busy
/// machine every processor has tasks queued, and a worker made to start on
/// another one than this thread's waits there behind them (measured here
/// at a load of 8 on two processors: the median `check` of 54 files took
/// 1-2 ms longer). Not the load average: it trails by a minute, and a
/// process that has just stopped (a benchmark's previous step) keeps it
/// high for that long. `false` if the file cannot be read.
fn mostly_idle(cpus: usize) -> bool {
    let mut buf = [0u8; 128];
    let Ok(mut f) = std::fs::File::open("/proc/loadavg") else {
        return false;
    };
    let n = std::io::Read::read(&mut f, &mut buf).unwrap_or(0);
    runnable_of(&buf[..n]).is_some_and(|r| r < cpus)
}

/// The runnable tasks in `/proc/loadavg`'s text ("0.85 1.63 3.58 1/84
/// 20323": the `1` of its fourth field).
fn runnable_of(text: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(text).ok()?;
    let field = text.split_ascii_whitespace().nth(3)?;
    field.split_once('/')?.0.parse().ok()
}

/// Opens files, largest first (the order the threads take them in), while
/// the early worker faults the arena's first page in or has yet to start
/// to (see [`Early`]): this thread would otherwise only wait for it, and
/// each file opened here is an `open` (about 2 µs here) less for the
/// threads that check the files. The descriptors go to `opened`; they stay
/// open until the process exits, as [`load_file`] leaves the files it
/// reads, and count against the same budget ([`may_keep_open`]).
///
/// Nothing is allocated here (`by_size` has room for every file, and names
/// shorter than 256 bytes are copied on the stack): the arena may be on,
/// and its first page is not this thread's to touch yet (see
/// [`super::arena::claim_first_touch`]).
fn open_while_waiting(
    files: &[OsString],
    at: &[Option<(RawFd, usize)>],
    sizes: &[Option<u64>],
    by_size: &mut Vec<usize>,
    opened: &mut [Option<RawFd>],
) {
    // Regular files only: opening anything else may have effects.
    by_size.extend((0..files.len()).filter(|&k| sizes[k].is_some()));
    by_size.sort_unstable_by_key(|&k| std::cmp::Reverse(sizes[k]));
    for &k in by_size.iter() {
        if !super::arena::first_touch_pending() || !may_keep_open() {
            return;
        }
        let file = match at[k] {
            Some((dir, i)) => open_at(dir, OsStr::from_bytes(&files[k].as_bytes()[i..])),
            None => std::fs::File::open(&files[k]),
        };
        // A file that cannot be opened now is opened again when checked,
        // which reports the error.
        if let Ok(file) = file {
            opened[k] = Some(file.into_raw_fd());
        }
    }
}

/// Files from which `check` may start its first worker thread before it
/// has looked at them all (see [`Early`]).
const EARLY_FILES: usize = 16;

/// Files looked at first, spread over the command line, to estimate the
/// whole text (see [`Early`]).
const EARLY_SAMPLE: usize = 8;

/// The first worker thread, started before most files are looked at when
/// there are many ([`EARLY_FILES`]), more than one processor, and a sample
/// of them ([`EARLY_SAMPLE`] files spread over the command line) promises
/// text enough for huge pages ([`LARGE_INPUT`]): while this thread
/// `stat`s the other files, the worker switches the arena on with
/// huge pages and faults in the first one, which is the kernel clearing
/// 2 MiB (0.07–0.3 ms here, more than the `stat`s). Then it waits for the
/// work, or for word that there is none for it (`None`: the files are
/// checked on this thread alone, see [`thread_count`]).
///
/// This thread waits for the worker only while the worker is faulting
/// the page in (see [`super::arena::claim_first_touch`]): if the worker has
/// not started to by the end of the `stat`s, this thread faults the page
/// in itself, as it would have without the worker.
struct Early {
    slot: Mutex<Option<Option<Arc<Work>>>>,
    ready: Condvar,
    /// Whether `slot` is filled (watched without the lock, see
    /// [`spin_until`]).
    handed: AtomicBool,
}

impl Early {
    /// Starts the worker if there is more than one processor (`cpus`).
    fn start(cpus: usize) -> Option<Arc<Early>> {
        if cpus < 2 {
            return None;
        }
        let early = Arc::new(Early {
            slot: Mutex::new(None),
            ready: Condvar::new(),
            handed: AtomicBool::new(false),
        });
        // Never freed (see `check_files`).
        std::mem::forget(Arc::clone(&early));
        let e = Arc::clone(&early);
        spawn_worker(move || {
            super::arena::enable(true);
            super::arena::touch();
            spin_until(|| e.handed.load(Acquire));
            let work = {
                let mut slot = e.slot.lock().unwrap_or_else(|p| p.into_inner());
                loop {
                    if let Some(work) = slot.take() {
                        break work;
                    }
                    slot = e.ready.wait(slot).unwrap_or_else(|p| p.into_inner());
                }
            };
            if let Some(work) = work {
                take_files(&work);
            }
        })
        .then_some(early)
    }

    /// Hands the worker its work (`None`: none, it ends).
    fn hand(&self, work: Option<Arc<Work>>) {
        *self.slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(work);
        self.handed.store(true, Release);
        self.ready.notify_one();
    }
}

/// Where to find each file: `Some((dir, k))` when the file is looked up
/// as its path's bytes from `k` on (its last component) relative to the
/// directory descriptor `dir`, else `None` (by its path).
///
/// Files of one directory side by side on the command line (`dir/*.kir`)
/// share one descriptor of that directory: the kernel then walks the
/// directory's path once, not twice per file (a `stat` and an `open`),
/// which is about a fifth of each of those calls for a path a few
/// directories deep. The descriptors stay open until the process exits
/// and count against the files `check` may leave open
/// ([`may_keep_open`]); a directory that cannot be opened leaves its files
/// to their paths, which then fail as they would have.
fn places(files: &[OsString]) -> Vec<Option<(RawFd, usize)>> {
    // The directory part (up to and including the last `/`) of a path
    // whose last component names an entry to look up in it.
    fn split(f: &OsString) -> Option<(&[u8], usize)> {
        let b = f.as_bytes();
        let k = b.iter().rposition(|&c| c == b'/')? + 1;
        let name = &b[k..];
        (!name.is_empty() && name != b"." && name != b"..").then_some((&b[..k], k))
    }
    let mut at = Vec::with_capacity(files.len());
    // The previous file's directory and its descriptor (if opened).
    let mut open: Option<(&[u8], RawFd)> = None;
    for (i, f) in files.iter().enumerate() {
        let Some((dir, k)) = split(f) else {
            at.push(None);
            continue;
        };
        let fd = match open {
            Some((d, fd)) if d == dir => Some(fd),
            // Worth a descriptor only for two files or more.
            _ if files.get(i + 1).and_then(split).map(|(d, _)| d) == Some(dir)
                && may_keep_open() =>
            {
                let fd = open_dir(dir);
                open = fd.map(|fd| (dir, fd));
                fd
            }
            _ => {
                open = None;
                None
            }
        };
        at.push(fd.map(|fd| (fd, k)));
    }
    at
}

/// A descriptor of the directory `dir` (a path), only for looking up
/// names in it (`O_PATH`), or `None`.
fn open_dir(dir: &[u8]) -> Option<RawFd> {
    // SAFETY: `c` is NUL-terminated and valid for the call.
    let fd = with_c_name(dir, |c| unsafe {
        libc::open(c, libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
    })?;
    (fd >= 0).then_some(fd)
}

/// The length of the regular file `name` in the directory `dir` (a
/// descriptor), following symbolic links as `std::fs::metadata` does;
/// `None` if it is not a regular file or cannot be looked up.
fn regular_size_at(dir: RawFd, name: &[u8]) -> Option<u64> {
    // SAFETY: an all-zero `stat` is a valid value of the plain C struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is NUL-terminated; `fstatat` writes one `stat` to `st`.
    let r = with_c_name(name, |c| unsafe { libc::fstatat(dir, c, &mut st, 0) })?;
    (r == 0 && st.st_mode & libc::S_IFMT == libc::S_IFREG).then_some(st.st_size as u64)
}

/// Makes threads started from now on share the C library allocator's main
/// heap. It gives each new thread its own heap (a reservation of 64 MiB or
/// more, trimmed and made writable: four system calls and fresh pages) the
/// first time the thread allocates there, which Rust's thread start-up
/// does (destructors of thread-locals). The arena serves everything else,
/// so the threads share the main heap: one mutex for a few small blocks.
fn one_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes a tuning parameter of the allocator;
    // M_ARENA_MAX caps the number of heaps future threads may create.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Stack size of a worker thread: the parser and the verifier never
/// recurse, so Rust's default is plenty.
const WORKER_STACK: usize = 2 << 20;

/// Starts a worker thread (sharing the main heap, see [`one_heap`]), on
/// another processor than this thread's under the normal policy on a
/// mostly idle machine (see [`share_processors`], [`mostly_idle`]);
/// whether it started.
fn spawn_worker(f: impl FnOnce() + Send + 'static) -> bool {
    one_heap();
    let elsewhere = PLACE_ELSEWHERE
        .load(Relaxed)
        .then(Elsewhere::new)
        .flatten()
        .filter(|e| mostly_idle(e.cpus));
    spawn_placed(f, elsewhere)
}

/// Starts a thread running `f`, moved first where `elsewhere` says (if
/// anywhere); whether it started.
fn spawn_placed(f: impl FnOnce() + Send + 'static, elsewhere: Option<Elsewhere>) -> bool {
    let placed = elsewhere.as_ref().map(|e| Arc::clone(&e.placed));
    // The threads are not joined: once the outcome is known the process
    // exits, even if one of them is still reading a later file.
    // The size is Rust's default, given so that starting the thread does
    // not read `RUST_MIN_STACK` from the environment (a page of code
    // touched for the first time, and a lock).
    let spawned = std::thread::Builder::new()
        .stack_size(WORKER_STACK)
        .spawn(move || {
            if let Some(placed) = placed {
                Elsewhere::settle(&placed);
            }
            f()
        });
    match spawned {
        Ok(handle) => {
            if let Some(e) = elsewhere {
                e.place(&handle);
            }
            true
        }
        Err(_) => false,
    }
}

/// Where a new worker thread starts: on a processor other than this
/// thread's. Left to itself, the scheduler may queue a new thread on the
/// processor of the thread that started it, where it waits for that
/// thread, and the work meant for two processors runs on one: this
/// machine's kernel packs tasks onto fewer virtual processors
/// (`kernel.sched_vcpu_pack`), and a process that has just started looks
/// nearly idle to it. The thread is moved before it runs
/// ([`Elsewhere::place`]) and, once running, allows itself every
/// processor again ([`Elsewhere::settle`]), so that the scheduler may
/// still move it later (when its processor gets busy).
struct Elsewhere {
    /// How many processors this process may run on.
    cpus: usize,
    /// The processors this process may run on, without this thread's
    /// current one.
    others: libc::cpu_set_t,
    /// Whether `place` is done (set once it is, whether it worked), and
    /// the processors this process may run on, which `settle` restores.
    placed: Arc<(AtomicBool, libc::cpu_set_t)>,
}

impl Elsewhere {
    /// `None` when there is no other processor to start on (or the
    /// processors cannot be known).
    fn new() -> Option<Elsewhere> {
        // SAFETY: all-zero is a valid `cpu_set_t` (the empty set);
        // sched_getaffinity writes at most its size into it.
        let mut all: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<libc::cpu_set_t>();
        // SAFETY: as above; sched_getcpu only reads this thread's state.
        let here = unsafe {
            if libc::sched_getaffinity(0, size, &mut all) != 0 {
                return None;
            }
            libc::sched_getcpu()
        };
        let here = usize::try_from(here).ok()?;
        let mut others = all;
        // SAFETY: CPU_ISSET/CPU_CLR check the index against the set's size.
        unsafe {
            if !libc::CPU_ISSET(here, &all) {
                return None;
            }
            libc::CPU_CLR(here, &mut others);
            if libc::CPU_COUNT(&others) == 0 {
                return None;
            }
        }
        Some(Elsewhere {
            // SAFETY: CPU_COUNT only reads the set.
            cpus: usize::try_from(unsafe { libc::CPU_COUNT(&all) }).unwrap_or(0),
            others,
            placed: Arc::new((AtomicBool::new(false), all)),
        })
    }

    /// Moves the just started thread `handle` to the other processors
    /// (before it has run, as a rule), then lets it [`Elsewhere::settle`].
    fn place(self, handle: &std::thread::JoinHandle<()>) {
        use std::os::unix::thread::JoinHandleExt;
        // SAFETY: `handle` is a live thread (it waits in `settle` for the
        // flag set below, so it has not ended); the call reads `others`.
        unsafe {
            libc::pthread_setaffinity_np(
                handle.as_pthread_t(),
                std::mem::size_of::<libc::cpu_set_t>(),
                &self.others,
            );
        }
        self.placed.0.store(true, Release);
    }

    /// Called first on the new thread: waits until it has been moved
    /// ([`Elsewhere::place`], a few microseconds after the start as a
    /// rule; after [`SPIN`], yielding the processor between looks), then
    /// allows every processor again; the thread stays where it runs. The
    /// thread cannot end before it has been moved, so `place` never moves
    /// an ended one.
    fn settle(placed: &(AtomicBool, libc::cpu_set_t)) {
        if !spin_until(|| placed.0.load(Acquire)) {
            while !placed.0.load(Acquire) {
                std::thread::yield_now();
            }
        }
        // SAFETY: sched_setaffinity on this thread reads one `cpu_set_t`.
        unsafe {
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &placed.1);
        }
    }
}

/// How many threads to check the files with (`cpus`: processors this
/// process may run on): 1 unless every file is a regular one, there are
/// several, and their text is worth it.
fn thread_count(sizes: &[Option<u64>], text: u64, cpus: usize) -> usize {
    if sizes.len() < 2 || sizes.iter().any(Option::is_none) {
        return 1;
    }
    let by_text = usize::try_from(text / TEXT_PER_THREAD).unwrap_or(usize::MAX);
    cpus.min(sizes.len()).min(by_text.max(1))
}

/// Processors this process may run on (1 if unknown). One system call:
/// `std::thread::available_parallelism` also reads the cgroup's quota
/// files, which costs more than a small check.
fn processors() -> usize {
    // SAFETY: `set` is a plain bit set of the size passed; the kernel
    // writes at most that many bytes into it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return 1;
        }
        usize::try_from(libc::CPU_COUNT(&set)).map_or(1, |n| n.max(1))
    }
}

/// The outcome of checking one file: its result, or the panic it raised.
type Outcome = std::thread::Result<Result<(), Failure>>;

/// What the threads share: the files in the order they are taken (largest
/// first), how many have been taken, the index of the first file known to
/// fail (no file after it is started), each file's outcome by index, and
/// whether the main thread waits for an outcome (only then is it woken: a
/// wake-up is a system call even when no one waits).
struct Work {
    files: Vec<OsString>,
    /// Where to open each file (see [`places`]).
    at: Vec<Option<(RawFd, usize)>>,
    /// Files already open (see [`open_while_waiting`]; empty if none),
    /// each used by the one thread that takes the file.
    opened: Vec<Option<RawFd>>,
    sizes: Vec<Option<u64>>,
    /// The file parsed on two threads, if any.
    split: Option<usize>,
    order: Vec<usize>,
    state: Mutex<State>,
    done: Condvar,
    /// Outcomes stored so far (changed under the lock of `state`; read
    /// without it while watching for the next one, see [`spin_until`]).
    stored: AtomicUsize,
}

struct State {
    taken: usize,
    first_failure: usize,
    outcomes: Vec<Option<Outcome>>,
    waiting: bool,
}

/// Checks the files with `threads` threads (this one included; with one,
/// no thread is started); the result is the sequential one (see the
/// module docs). `large`: switch the arena on with huge pages from the
/// start (see [`check`]). `split`: the file to parse on two threads.
/// `early`: a worker already started (see [`Early`]), one of the threads.
///
/// The arena is switched on only once the threads are started: what they
/// share and what starting them allocates stays the system allocator's,
/// so the first touch of the arena (a huge page, 0.1–0.2 ms for the
/// kernel to clear) happens on this thread while the others start, rather
/// than before they are even created.
#[allow(clippy::too_many_arguments)]
fn check_files(
    files: Vec<OsString>,
    at: Vec<Option<(RawFd, usize)>>,
    opened: Vec<Option<RawFd>>,
    sizes: Vec<Option<u64>>,
    threads: usize,
    large: bool,
    split: Option<usize>,
    early: Option<Arc<Early>>,
) -> Result<(), Failure> {
    let mut order: Vec<usize> = (0..files.len()).collect();
    if threads > 1 {
        // Largest first, so that no thread is left with a large file at
        // the end while the others wait. Alone, this thread keeps the
        // command line's order: it stops at the first failure, and pipes
        // and devices are read in the order given.
        order.sort_by_key(|&k| std::cmp::Reverse(sizes[k]));
    }
    let n = files.len();
    let work = Arc::new(Work {
        files,
        at,
        opened,
        sizes,
        split,
        order,
        stored: AtomicUsize::new(0),
        state: Mutex::new(State {
            taken: 0,
            first_failure: n,
            outcomes: (0..n).map(|_| None).collect(),
            waiting: false,
        }),
        done: Condvar::new(),
    });
    // The process exits next: the shared state (the file names, the
    // outcomes) is never freed, which would only cost time.
    std::mem::forget(Arc::clone(&work));
    // The workers wait for this lock before taking a file, so that all
    // they allocate for the files is the arena's.
    let held = lock(&work.state);
    let mut started = 1;
    if let Some(early) = early {
        let share = (threads > 1).then(|| Arc::clone(&work));
        started += usize::from(share.is_some());
        early.hand(share);
    }
    for _ in started..threads {
        let w = Arc::clone(&work);
        // A thread that cannot start leaves its share to the others.
        spawn_worker(move || take_files(&w));
    }
    super::arena::enable(large);
    drop(held);
    take_files(&work);
    // Alone, this thread has checked every file up to the first failure:
    // the loop below never waits.
    let mut state = lock(&work.state);
    loop {
        // The first file, in command-line order, not known to pass.
        match state
            .outcomes
            .iter()
            .position(|o| !matches!(o, Some(Ok(Ok(())))))
        {
            None => return Ok(()),
            Some(k) => match state.outcomes[k].take() {
                Some(Ok(Err(failure))) => return Err(failure),
                Some(Err(panic)) => {
                    drop(state);
                    resume_unwind(panic)
                }
                // Not done yet: watch for the next outcome a while, then
                // sleep until one is stored (see `SPIN`).
                other => {
                    state.outcomes[k] = other;
                    let seen = work.stored.load(Relaxed);
                    drop(state);
                    spin_until(|| work.stored.load(Relaxed) != seen);
                    state = lock(&work.state);
                    // `stored` changes under the lock: unchanged here, no
                    // outcome came, and the next one will see `waiting`.
                    if work.stored.load(Relaxed) == seen {
                        state.waiting = true;
                        state = work.done.wait(state).unwrap_or_else(|e| e.into_inner());
                        state.waiting = false;
                    }
                }
            },
        }
    }
}

/// How long a thread waiting for another one watches for the change
/// before it sleeps: a sleeping thread takes ~17 us to wake here (a
/// processor gone idle), and the waits of `check` are mostly for work a
/// running thread is about to finish.
const SPIN: Duration = Duration::from_micros(200);

/// Watches `done` until it holds or [`SPIN`] has passed; whether it held.
/// Between looks the processor is yielded to any other thread that wants
/// it, so that a busy machine loses little to the watching.
pub(super) fn spin_until(mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        for _ in 0..64 {
            if done() {
                return true;
            }
            std::hint::spin_loop();
        }
        if start.elapsed() >= SPIN {
            return done();
        }
        std::thread::yield_now();
    }
}

/// Locks the shared state; a panic never happens while it is held, but a
/// poisoned lock would still hold consistent data.
fn lock(m: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Takes files and checks them until none is left (or the next one comes
/// after a known failure); each outcome goes to its slot.
fn take_files(work: &Work) {
    let mut bytes = Vec::new();
    loop {
        let k = {
            let mut state = lock(&work.state);
            let Some(&k) = work.order.get(state.taken) else {
                return;
            };
            state.taken += 1;
            if k > state.first_failure {
                continue;
            }
            k
        };
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            check_file(
                &work.files[k],
                work.at[k],
                work.opened.get(k).copied().flatten(),
                work.sizes[k],
                &mut bytes,
                work.split == Some(k),
            )
        }));
        let failed = !matches!(outcome, Ok(Ok(())));
        let mut state = lock(&work.state);
        if failed {
            state.first_failure = state.first_failure.min(k);
        }
        state.outcomes[k] = Some(outcome);
        work.stored.fetch_add(1, Relaxed);
        // The main thread sets `waiting` under the lock and releases the
        // lock only by waiting, so an outcome stored while it is unset is
        // seen before it would wait.
        let wake = state.waiting;
        drop(state);
        if wake {
            work.done.notify_all();
        }
    }
}

/// Reads, parses and verifies one file (on two threads when `split`;
/// `opened` if already open, else opened where `at` says, see
/// [`places`]); its module is kept until the process exits (see
/// [`check`]).
fn check_file(
    path: &OsString,
    at: Option<(RawFd, usize)>,
    opened: Option<RawFd>,
    size: Option<u64>,
    bytes: &mut Vec<u8>,
    split: bool,
) -> Result<(), Failure> {
    let opening = match (opened, at) {
        // SAFETY: `open_while_waiting` opened `fd` for this file, and only
        // the one thread that takes the file gets here with it.
        (Some(fd), _) => Opening::Open(unsafe { std::fs::File::from_raw_fd(fd) }),
        (None, Some((dir, k))) => Opening::At(dir, OsStr::from_bytes(&path.as_bytes()[k..])),
        (None, None) => Opening::Path,
    };
    load_file(path, opening, size, bytes, split, true).map(std::mem::forget)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    /// The (device, inode) of `name` looked up relative to `dir`.
    fn id_at(dir: RawFd, name: &[u8]) -> (u64, u64) {
        let c = std::ffi::CString::new(name).unwrap();
        // SAFETY: an all-zero `stat` is a valid value; `fstatat` writes it.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        assert_eq!(unsafe { libc::fstatat(dir, c.as_ptr(), &mut st, 0) }, 0);
        (st.st_dev, st.st_ino)
    }

    #[test]
    fn the_machine_is_mostly_idle_below_one_task_per_processor() {
        // Whatever the load now: no processor is never enough, a million
        // always is.
        assert!(!mostly_idle(0));
        assert!(mostly_idle(1 << 20));
        assert_eq!(runnable_of(b"0.85 1.63 3.58 1/84 20323\n"), Some(1));
        assert_eq!(runnable_of(b"8.02 8.10 7.5 12/431 99\n"), Some(12));
        assert_eq!(runnable_of(b"0.85 1.63 3.58"), None);
        assert_eq!(runnable_of(b"0.85 1.63 3.58 x/84 1"), None);
    }

    #[test]
    fn a_worker_starts_on_another_processor_and_may_then_run_anywhere() {
        std::thread::spawn(|| {
            let Some(e) = Elsewhere::new() else {
                return; // one processor: nowhere else to start
            };
            let all = e.placed.1;
            // The processor left out, and this thread kept to it: a
            // thread started now inherits that, so only being moved
            // (`place`) lets it run anywhere else.
            let here = (0..libc::CPU_SETSIZE as usize)
                .find(|&c| unsafe { libc::CPU_ISSET(c, &all) && !libc::CPU_ISSET(c, &e.others) })
                .unwrap();
            // SAFETY: a set of one processor this thread may run on.
            unsafe {
                let mut one: libc::cpu_set_t = std::mem::zeroed();
                libc::CPU_SET(here, &mut one);
                assert_eq!(
                    libc::sched_setaffinity(0, std::mem::size_of_val(&one), &one),
                    0
                );
            }
            let (tx, rx) = std::sync::mpsc::channel();
            assert!(spawn_placed(
                move || {
                    // SAFETY: reads this thread's processor and mask.
                    let (cpu, mut mask) = unsafe { (libc::sched_getcpu(), std::mem::zeroed()) };
                    unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&mask), &mut mask) };
                    let _ = tx.send((cpu, mask));
                },
                Some(e),
            ));
            let (cpu, mask) = rx.recv().unwrap();
            assert_ne!(
                cpu as usize, here,
                "the worker ran on the processor left out"
            );
            // Settled: every processor allowed again.
            // SAFETY: CPU_EQUAL only reads both sets.
            assert!(
                unsafe { libc::CPU_EQUAL(&mask, &all) },
                "the worker's processors were not restored"
            );
        })
        .join()
        .unwrap();
    }

    #[test]
    fn files_of_one_directory_share_a_descriptor_that_finds_them() {
        let root = std::env::temp_dir().join(format!("kiln-check-places-{}", std::process::id()));
        let (a, b) = (root.join("a"), root.join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        for p in [
            a.join("x.kir"),
            a.join("y.kir"),
            a.join("z.kir"),
            b.join("w.kir"),
        ] {
            std::fs::write(p, "").unwrap();
        }
        let path = |p: &std::path::Path| p.as_os_str().to_owned();
        let files: Vec<OsString> = vec![
            path(&a.join("x.kir")),
            path(&a.join("y.kir")),
            // Alone in its directory on the command line: by its path.
            path(&b.join("w.kir")),
            path(&a.join("z.kir")),
            // Not a name in a directory: by its path.
            path(&a.join("..")),
            path(&a.join(".")),
            "x.kir".into(),
            // A directory that does not exist: its files by their paths.
            path(&root.join("none/x.kir")),
            path(&root.join("none/y.kir")),
            // Two in one directory, named the same way.
            path(&b.join("w.kir")),
            path(&b.join("w.kir")),
        ];
        let at = places(&files);
        let expect_some = [0, 1, 9, 10];
        for (k, (f, at)) in files.iter().zip(&at).enumerate() {
            assert_eq!(at.is_some(), expect_some.contains(&k), "file {k}: {f:?}");
            if let Some((dir, i)) = *at {
                let m = std::fs::metadata(f).unwrap();
                assert_eq!(id_at(dir, &f.as_bytes()[i..]), (m.dev(), m.ino()), "{f:?}");
                assert_eq!(regular_size_at(dir, &f.as_bytes()[i..]), Some(0));
            }
        }
        assert_eq!(at[0].unwrap().0, at[1].unwrap().0);
        assert_eq!(at[9].unwrap().0, at[10].unwrap().0);
        assert_ne!(at[0].unwrap().0, at[9].unwrap().0);
        // A directory is not a regular file.
        let (dir, _) = at[0].unwrap();
        assert_eq!(regular_size_at(dir, b".."), None);
        assert_eq!(regular_size_at(dir, b"missing.kir"), None);
        let _ = std::fs::remove_dir_all(&root);
    }
}
