//! Splitting row-parallel CPU work over threads (with `std`); a plain loop without it, and in
//! WebAssembly, which has no threads.
//!
//! The threads are a persistent rayon pool: a decoding step runs dozens of small parallel
//! products, and spawning fresh threads for each cost about 60 µs apiece (a tenth of a step).

/// Below this many multiply-adds (or similar units) a job runs on the calling thread: handing
/// work to the pool and waiting for it costs microseconds.
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
