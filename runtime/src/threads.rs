//! Splitting row-parallel CPU work over threads (with `std`); a plain loop without it, and in
//! WebAssembly, which has no threads.
//!
//! The threads are a persistent team (see [`team::Team`]): a decoding step runs dozens of small
//! parallel products, and spawning fresh threads for each cost about 60 µs apiece (a tenth of a
//! step); a rayon pool that slept between them, 40–50 µs.

/// Below this many multiply-adds (or similar units) a job runs on the calling thread: handing
/// work to the pool and waiting for it costs microseconds.
#[cfg(feature = "std")]
const MIN_WORK_PER_THREAD: usize = 1 << 15;

/// `CAPPA_NUM_THREADS` as read: `Ok(None)` when unset or empty, the count (clamped to
/// [`MAX_THREADS`](crate::limits::MAX_THREADS)) when it is a positive whole number, an error
/// naming the variable otherwise.
#[cfg_attr(not(feature = "std"), allow(dead_code))]
pub fn parse_num_threads(value: Option<&str>) -> crate::error::Result<Option<usize>> {
    let Some(v) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let n = match v.parse::<u64>() {
        Ok(n) => Some(n),
        // More than 64 bits of threads: clamped like any other large count.
        Err(e) if *e.kind() == core::num::IntErrorKind::PosOverflow => Some(u64::MAX),
        Err(_) => None,
    };
    match n {
        Some(n) if n > 0 => Ok(Some(n.min(crate::limits::MAX_THREADS as u64) as usize)),
        _ => Err(crate::error::Error::InvalidInput(alloc::format!(
            "CAPPA_NUM_THREADS is `{v}`; it must be a whole number of threads from 1 (at most \
             {} are used)",
            crate::limits::MAX_THREADS
        ))),
    }
}

/// `CAPPA_NUM_THREADS` from the environment, checked (see [`parse_num_threads`]).
#[cfg(feature = "std")]
pub fn num_threads_setting() -> crate::error::Result<Option<usize>> {
    let v = std::env::var_os("CAPPA_NUM_THREADS");
    parse_num_threads(v.as_ref().map(|v| v.to_str().unwrap_or("(not UTF-8)")))
}

/// Threads to use: `CAPPA_NUM_THREADS` if set (clamped to
/// [`MAX_THREADS`](crate::limits::MAX_THREADS); a value that is not a number is ignored here
/// and reported by [`Device::open`](crate::Device::open)), else the available parallelism.
#[cfg(all(feature = "std", not(target_family = "wasm")))]
pub fn num_threads() -> usize {
    use std::sync::OnceLock;
    static N: OnceLock<usize> = OnceLock::new();
    *N.get_or_init(|| {
        num_threads_setting()
            .ok()
            .flatten()
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .min(crate::limits::MAX_THREADS)
    })
}

/// Threads to use in WebAssembly: one.
#[cfg(all(feature = "std", target_family = "wasm"))]
pub fn num_threads() -> usize {
    1
}

/// Splits `len` items into as many contiguous ranges as threads are worth using when each item
/// costs `work_per_item`: one range when the job is too small to share.
#[cfg(feature = "std")]
fn ranges(len: usize, work_per_item: usize) -> (usize, usize) {
    let threads = num_threads()
        .min(len)
        .min(len.saturating_mul(work_per_item) / MIN_WORK_PER_THREAD)
        .max(1);
    let per = len.div_ceil(threads).max(1);
    (len.div_ceil(per), per)
}

/// Calls `f(range)` for contiguous ranges that together cover `0..len`, in parallel when the
/// total `work_per_item × len` is large enough (`std` only: its one user is the `std` GEMM).
#[cfg(feature = "std")]
pub fn for_ranges<F>(len: usize, work_per_item: usize, f: F)
where
    F: Fn(core::ops::Range<usize>) + Sync,
{
    let (pieces, per) = ranges(len, work_per_item);
    run_pieces(pieces, &|i| f(i * per..((i + 1) * per).min(len)));
}

/// Calls `f(first_row, rows)` over contiguous chunks of `out`, whose rows are `row_len` long,
/// in parallel when the total `work_per_row × rows` is large enough.
pub fn for_row_chunks<F>(out: &mut [f32], row_len: usize, work_per_row: usize, f: F)
where
    F: Fn(usize, &mut [f32]) + Sync,
{
    #[cfg(all(feature = "std", not(target_family = "wasm")))]
    {
        use std::sync::{Mutex, PoisonError};
        let rows = out.len().checked_div(row_len).unwrap_or(0);
        let (pieces, per) = ranges(rows, work_per_row);
        if pieces > 1 {
            // Each piece locks its own chunk, once: the locks only hand the disjoint chunks over.
            let chunks: alloc::vec::Vec<Mutex<&mut [f32]>> =
                out.chunks_mut(per * row_len).map(Mutex::new).collect();
            return run_pieces(pieces, &|i| {
                f(
                    i * per,
                    &mut chunks[i].lock().unwrap_or_else(PoisonError::into_inner),
                )
            });
        }
    }
    #[cfg(not(all(feature = "std", not(target_family = "wasm"))))]
    let _ = (row_len, work_per_row);
    f(0, out)
}

/// Calls `f` on every item (disjoint pieces of the outputs, say), in parallel when the total
/// `work_per_item × items` is large enough. Each item is handled exactly as on one thread, so
/// results do not depend on the thread count (its user is the trainer's attention backward).
#[cfg(feature = "train")]
pub fn for_each<T, F>(items: alloc::vec::Vec<T>, work_per_item: usize, f: F)
where
    T: Send,
    F: Fn(T) + Sync,
{
    let (pieces, per) = ranges(items.len(), work_per_item);
    if pieces <= 1 {
        return items.into_iter().for_each(f);
    }
    #[cfg(all(feature = "std", not(target_family = "wasm")))]
    {
        use std::sync::{Mutex, PoisonError};
        let mut items = items.into_iter();
        let groups: alloc::vec::Vec<Mutex<alloc::vec::Vec<T>>> = (0..pieces)
            .map(|_| Mutex::new(items.by_ref().take(per).collect()))
            .collect();
        run_pieces(pieces, &|i| {
            let group =
                core::mem::take(&mut *groups[i].lock().unwrap_or_else(PoisonError::into_inner));
            group.into_iter().for_each(&f)
        })
    }
    #[cfg(not(all(feature = "std", not(target_family = "wasm"))))]
    items.into_iter().for_each(f)
}

/// The helper threads, made on first use (one fewer than [`num_threads`]: the calling thread
/// works too); `None` if the system refused them (the work then runs on the calling thread).
#[cfg(all(feature = "std", not(target_family = "wasm")))]
fn team() -> Option<&'static team::Team> {
    use std::sync::OnceLock;
    static TEAM: OnceLock<Option<team::Team>> = OnceLock::new();
    TEAM.get_or_init(|| team::Team::new(num_threads() - 1))
        .as_ref()
}

/// Runs `piece(i)` for every `i` in `0..pieces`, on the calling thread and the helpers: each
/// piece exactly once, in whatever order threads claim them.
#[cfg(feature = "std")]
fn run_pieces(pieces: usize, piece: &(dyn Fn(usize) + Sync)) {
    #[cfg(not(target_family = "wasm"))]
    if pieces > 1 {
        if let Some(team) = team() {
            return team.run(pieces, piece);
        }
    }
    (0..pieces).for_each(piece);
}

/// A persistent team of helper threads for the row-parallel jobs of one calling thread at a
/// time.
///
/// A decoding step runs dozens of parallel products a few tens of microseconds apart, each
/// worth only 20–100 µs of work. Handing them to a pool that sleeps between jobs (rayon's,
/// before) cost 40–50 µs per call on a 2-core VM: waking a worker, then waking the caller that
/// slept waiting for it. Here the caller works on the pieces itself while the helpers join in
/// (so a helper that is slow to wake costs nothing: the caller takes its piece), and helpers
/// spin for a short while after each job before they sleep, yielding the core to any other
/// runnable thread (the trainer's data loaders) as they spin.
#[cfg(all(feature = "std", not(target_family = "wasm")))]
mod team {
    use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering::SeqCst};
    use std::sync::{Condvar, Mutex};
    use std::time::{Duration, Instant};

    /// How long a helper watches for the next job before it sleeps: longer than the gaps
    /// between a decoding step's products, short enough that an idle program sleeps at once.
    const SPIN: Duration = Duration::from_micros(300);

    /// One job, on the calling thread's stack while it runs.
    struct Job<'a> {
        /// Which job this is, counting from 1.
        number: u64,
        piece: &'a (dyn Fn(usize) + Sync),
        pieces: usize,
        /// The next piece to claim.
        next: AtomicUsize,
        /// Pieces finished.
        done: AtomicUsize,
        /// Whether a piece panicked on a helper.
        panicked: AtomicBool,
    }

    impl Job<'_> {
        /// Claims and runs pieces until none is left; false if one of them panicked.
        fn work(&self) -> bool {
            let mut ok = true;
            loop {
                let i = self.next.fetch_add(1, SeqCst);
                if i >= self.pieces {
                    return ok;
                }
                let run = std::panic::AssertUnwindSafe(|| (self.piece)(i));
                ok &= std::panic::catch_unwind(run).is_ok();
                self.done.fetch_add(1, SeqCst);
            }
        }
    }

    struct Shared {
        /// The open job, or null.
        job: AtomicPtr<Job<'static>>,
        /// Helpers between seeing the job and letting go of it: the caller waits for none
        /// before its job (on its stack) goes away.
        users: AtomicUsize,
        /// Jobs opened so far.
        opened: AtomicU64,
        /// Helpers asleep (or about to be) on `wake`.
        sleepers: AtomicUsize,
        lock: Mutex<()>,
        wake: Condvar,
    }

    pub struct Team {
        shared: &'static Shared,
        /// Whether a caller holds the team (one at a time; others run their work alone).
        busy: AtomicBool,
    }

    std::thread_local! {
        /// Whether this thread is inside a job (a helper, or a caller holding the team): a
        /// parallel call nested in a piece runs on its own thread.
        static IN_JOB: core::cell::Cell<bool> = const { core::cell::Cell::new(false) };
    }

    impl Team {
        pub fn new(helpers: usize) -> Option<Team> {
            if helpers == 0 {
                return None;
            }
            // The helpers live as long as the program, and so does what they share.
            let shared: &'static Shared = alloc::boxed::Box::leak(alloc::boxed::Box::new(Shared {
                job: AtomicPtr::new(core::ptr::null_mut()),
                users: AtomicUsize::new(0),
                opened: AtomicU64::new(0),
                sleepers: AtomicUsize::new(0),
                lock: Mutex::new(()),
                wake: Condvar::new(),
            }));
            for i in 0..helpers {
                let spawned = std::thread::Builder::new()
                    .name(alloc::format!("cappa-cpu-{i}"))
                    .spawn(move || helper(shared));
                // With fewer helpers than asked for, pieces wait for the ones there are.
                if spawned.is_err() && i == 0 {
                    return None;
                }
            }
            Some(Team {
                shared,
                busy: AtomicBool::new(false),
            })
        }

        pub fn run(&self, pieces: usize, piece: &(dyn Fn(usize) + Sync)) {
            let nested = IN_JOB.with(|f| f.get());
            if nested
                || self
                    .busy
                    .compare_exchange(false, true, SeqCst, SeqCst)
                    .is_err()
            {
                return (0..pieces).for_each(piece);
            }
            let s = self.shared;
            let job = Job {
                number: s.opened.fetch_add(1, SeqCst) + 1,
                piece,
                pieces,
                next: AtomicUsize::new(0),
                done: AtomicUsize::new(0),
                panicked: AtomicBool::new(false),
            };
            // Closes the job and frees the team even if a piece panics on this thread.
            let open = Open { team: self };
            IN_JOB.with(|f| f.set(true));
            s.job
                .store(&job as *const Job<'_> as *mut Job<'static>, SeqCst);
            if s.sleepers.load(SeqCst) > 0 {
                let _held = s.lock.lock().unwrap_or_else(|e| e.into_inner());
                s.wake.notify_all();
            }
            let mine_ok = job.work();
            let mut spins = 0u32;
            while job.done.load(SeqCst) < pieces {
                pause(&mut spins);
            }
            drop(open);
            if !mine_ok || job.panicked.load(SeqCst) {
                panic!("a piece of a parallel CPU job panicked");
            }
        }
    }

    /// The open job of a caller: on drop, no new helper may join it, the caller waits for the
    /// ones inside it to leave, and the team is free again.
    struct Open<'a> {
        team: &'a Team,
    }

    impl Drop for Open<'_> {
        fn drop(&mut self) {
            let s = self.team.shared;
            s.job.store(core::ptr::null_mut(), SeqCst);
            let mut spins = 0u32;
            while s.users.load(SeqCst) != 0 {
                pause(&mut spins);
            }
            IN_JOB.with(|f| f.set(false));
            self.team.busy.store(false, SeqCst);
        }
    }

    /// One round of waiting: a spin hint, and now and then the core given to another thread.
    fn pause(spins: &mut u32) {
        *spins = spins.wrapping_add(1);
        if spins.is_multiple_of(64) {
            std::thread::yield_now();
        } else {
            core::hint::spin_loop();
        }
    }

    fn helper(s: &'static Shared) {
        IN_JOB.with(|f| f.set(true));
        let mut idle_since = Instant::now();
        let mut spins = 0u32;
        // The number of the last job this helper worked on (a finished job stays open until
        // its caller sees every piece done).
        let mut last = 0u64;
        loop {
            if !s.job.load(SeqCst).is_null() {
                s.users.fetch_add(1, SeqCst);
                // Still open (this job or a later one): it stays alive until `users` drops
                // back, because its caller waits for that after closing it.
                let job = s.job.load(SeqCst);
                if !job.is_null() {
                    // SAFETY: non-null while counted in `users` (see `Open::drop`).
                    let job = unsafe { &*job };
                    if job.number != last {
                        last = job.number;
                        if !job.work() {
                            job.panicked.store(true, SeqCst);
                        }
                        idle_since = Instant::now();
                    }
                }
                s.users.fetch_sub(1, SeqCst);
                pause(&mut spins);
                continue;
            }
            if idle_since.elapsed() < SPIN {
                pause(&mut spins);
                continue;
            }
            let held = s.lock.lock().unwrap_or_else(|e| e.into_inner());
            s.sleepers.fetch_add(1, SeqCst);
            let held = if s.job.load(SeqCst).is_null() {
                s.wake.wait(held).unwrap_or_else(|e| e.into_inner())
            } else {
                held
            };
            s.sleepers.fetch_sub(1, SeqCst);
            drop(held);
            idle_since = Instant::now();
        }
    }
}

/// Sums `data`, every thread of the machine reading its own contiguous part once, in 16 lanes so
/// that the adds keep up with memory: what a read-bandwidth probe times (`cappa bench`, the
/// `few_rows` benchmark), as a decoding step's products split their weights.
#[cfg(all(feature = "std", not(target_family = "wasm")))]
pub fn streaming_sum(data: &[f32]) -> f32 {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per = data.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let parts: alloc::vec::Vec<_> = data
            .chunks(per)
            .map(|part| {
                s.spawn(move || {
                    let mut acc = [0.0f32; 16];
                    for c in part.chunks_exact(16) {
                        for (a, v) in acc.iter_mut().zip(c) {
                            *a += v;
                        }
                    }
                    acc.iter().sum::<f32>()
                })
            })
            .collect();
        parts.into_iter().map(|p| p.join().unwrap_or(0.0)).sum()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    /// Every index of every job is visited exactly once: many small jobs back to back (the
    /// helpers between spinning and sleeping), from several callers at once (one holds the
    /// team, the others run alone), and with jobs nested in a piece (run on their own thread).
    #[cfg(feature = "std")]
    #[test]
    fn every_piece_runs_once_whoever_calls() {
        use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};
        fn check(len: usize, nested: bool) {
            let hits: alloc::vec::Vec<AtomicUsize> =
                (0..len).map(|_| AtomicUsize::new(0)).collect();
            for_ranges(len, MIN_WORK_PER_THREAD, |r| {
                for i in r {
                    if nested {
                        for_ranges(3, MIN_WORK_PER_THREAD, |inner| {
                            hits[i].fetch_add(inner.len(), Relaxed);
                        });
                    } else {
                        hits[i].fetch_add(3, Relaxed);
                    }
                }
            });
            assert!(hits.iter().all(|h| h.load(Relaxed) == 3), "len {len}");
        }
        std::thread::scope(|s| {
            for caller in 0..3 {
                s.spawn(move || {
                    for round in 0..2000 {
                        check(1 + (round + caller) % 9, round % 5 == 0);
                    }
                    // After a pause long enough for the helpers to sleep.
                    std::thread::sleep(std::time::Duration::from_millis(5));
                    check(7, false);
                });
            }
        });
        let mut out = alloc::vec![0.0f32; 6 * 4];
        for_row_chunks(&mut out, 4, MIN_WORK_PER_THREAD, |first, chunk| {
            for (i, row) in chunk.chunks_exact_mut(4).enumerate() {
                row.fill((first + i) as f32);
            }
        });
        assert!(out
            .chunks_exact(4)
            .enumerate()
            .all(|(i, r)| r.iter().all(|&v| v == i as f32)));
    }

    /// A piece that panics makes the call panic (on the calling thread, never a hang), and the
    /// threads serve the next call.
    #[cfg(feature = "std")]
    #[test]
    fn a_panicking_piece_panics_the_call_and_the_threads_go_on() {
        for _ in 0..20 {
            let r = std::panic::catch_unwind(|| {
                for_ranges(4, MIN_WORK_PER_THREAD, |r| {
                    if r.contains(&3) {
                        panic!("piece 3");
                    }
                })
            });
            assert!(r.is_err());
            let sum = core::sync::atomic::AtomicUsize::new(0);
            for_ranges(4, MIN_WORK_PER_THREAD, |r| {
                sum.fetch_add(r.len(), core::sync::atomic::Ordering::Relaxed);
            });
            assert_eq!(sum.into_inner(), 4);
        }
    }

    #[test]
    fn thread_counts_are_clamped_and_non_numbers_rejected() {
        let max = crate::limits::MAX_THREADS;
        assert_eq!(parse_num_threads(None).unwrap(), None);
        assert_eq!(parse_num_threads(Some(" ")).unwrap(), None);
        assert_eq!(parse_num_threads(Some("3")).unwrap(), Some(3));
        assert_eq!(parse_num_threads(Some("100000")).unwrap(), Some(max));
        assert_eq!(
            parse_num_threads(Some("99999999999999999999999")).unwrap(),
            Some(max)
        );
        for bad in ["abc", "0", "00", "-2", "1.5", "4 threads"] {
            let e = parse_num_threads(Some(bad)).unwrap_err().to_string();
            assert!(
                e.contains("CAPPA_NUM_THREADS") && e.contains(bad),
                "{bad}: {e}"
            );
        }
    }
}
