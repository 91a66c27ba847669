//! Splitting row-parallel CPU work over threads (with `std`); a plain loop without it, and in
//! WebAssembly, which has no threads.
//!
//! The threads are a persistent rayon pool: a decoding step runs dozens of small parallel
//! products, and spawning fresh threads for each cost about 60 µs apiece (a tenth of a step).

/// Below this many multiply-adds (or similar units) a job runs on the calling thread: handing
/// work to the pool and waiting for it costs microseconds.
const MIN_WORK_PER_THREAD: usize = 1 << 15;

/// Threads to use: `CAPPA_NUM_THREADS` if set, else the available parallelism.
#[cfg(all(feature = "std", not(target_family = "wasm")))]
pub fn num_threads() -> usize {
    use std::sync::OnceLock;
    static N: OnceLock<usize> = OnceLock::new();
    *N.get_or_init(|| {
        std::env::var("CAPPA_NUM_THREADS")
            .ok()
            .and_then(|s| s.parse().ok())
            .filter(|&n: &usize| n > 0)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    })
}

/// The pool, made on first use with [`num_threads`] threads; `None` if the system refused the
/// threads (the work then runs on the calling thread).
#[cfg(all(feature = "std", not(target_family = "wasm")))]
fn pool() -> Option<&'static rayon::ThreadPool> {
    use std::sync::OnceLock;
    static POOL: OnceLock<Option<rayon::ThreadPool>> = OnceLock::new();
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(num_threads())
            .thread_name(|i| alloc::format!("cappa-cpu-{i}"))
            .build()
            .ok()
    })
    .as_ref()
}

/// Threads to use without `std`, or in WebAssembly: one.
#[cfg(any(not(feature = "std"), target_family = "wasm"))]
pub fn num_threads() -> usize {
    1
}

/// Calls `f(range)` for contiguous ranges that together cover `0..len`, in parallel when the
/// total `work_per_item × len` is large enough (`std` only: its one user is the `std` GEMM).
#[cfg(feature = "std")]
pub fn for_ranges<F>(len: usize, work_per_item: usize, f: F)
where
    F: Fn(core::ops::Range<usize>) + Sync,
{
    let threads = num_threads()
        .min(len)
        .min((len * work_per_item) / MIN_WORK_PER_THREAD)
        .max(1);
    if threads == 1 {
        f(0..len);
        return;
    }
    #[cfg(not(target_family = "wasm"))]
    if let Some(pool) = pool() {
        let per = len.div_ceil(threads);
        pool.scope(|s| {
            let f = &f;
            for start in (0..len).step_by(per) {
                s.spawn(move |_| f(start..(start + per).min(len)));
            }
        });
        return;
    }
    f(0..len);
}

/// Calls `f(first_row, rows)` over contiguous chunks of `out`, whose rows are `row_len` long,
/// in parallel when the total `work_per_row × rows` is large enough.
pub fn for_row_chunks<F>(out: &mut [f32], row_len: usize, work_per_row: usize, f: F)
where
    F: Fn(usize, &mut [f32]) + Sync,
{
    let rows = out.len().checked_div(row_len).unwrap_or(0);
    let threads = num_threads()
        .min(rows)
        .min((rows * work_per_row) / MIN_WORK_PER_THREAD)
        .max(1);
    if threads == 1 {
        f(0, out);
        return;
    }
    #[cfg(all(feature = "std", not(target_family = "wasm")))]
    if let Some(pool) = pool() {
        let per = rows.div_ceil(threads);
        pool.scope(|s| {
            let f = &f;
            for (i, chunk) in out.chunks_mut(per * row_len).enumerate() {
                s.spawn(move |_| f(i * per, chunk));
            }
        });
        return;
    }
    f(0, out);
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
    let threads = num_threads()
        .min(items.len())
        .min((items.len() * work_per_item) / MIN_WORK_PER_THREAD)
        .max(1);
    #[cfg(all(feature = "std", not(target_family = "wasm")))]
    if threads > 1 {
        if let Some(pool) = pool() {
            let per = items.len().div_ceil(threads);
            let mut items = items.into_iter();
            pool.scope(|s| {
                let f = &f;
                loop {
                    let group: alloc::vec::Vec<T> = items.by_ref().take(per).collect();
                    if group.is_empty() {
                        break;
                    }
                    s.spawn(move |_| group.into_iter().for_each(f));
                }
            });
            return;
        }
    }
    let _ = threads;
    items.into_iter().for_each(f);
}
