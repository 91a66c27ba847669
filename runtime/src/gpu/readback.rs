//! Reading device memory back: [`Ctx::read`] blocks until the device has mapped the memory
//! (native programs), [`Ctx::read_async`] awaits the map callback instead (web pages, where the
//! callback runs only once control returns to the browser's event loop). Both copy every part
//! into pooled staging buffers and submit once.

#[cfg(not(target_arch = "wasm32"))]
use std::string::ToString;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use std::vec::Vec;

#[cfg(not(target_arch = "wasm32"))]
use crate::error::Error;
use crate::error::Result;

#[cfg(target_arch = "wasm32")]
use super::device::cannot_block;
use super::device::{backend_error, lock, Ctx};
use super::pool::Buf;

/// The result of a buffer map, delivered by wgpu's callback to the future awaiting it.
#[derive(Default)]
struct MapSlot {
    result: Option<core::result::Result<(), wgpu::BufferAsyncError>>,
    waker: Option<Waker>,
}

/// Resolves when the map callback that shares `slot` has run.
struct Mapped(Arc<Mutex<MapSlot>>);

impl core::future::Future for Mapped {
    type Output = core::result::Result<(), wgpu::BufferAsyncError>;

    fn poll(
        self: core::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Self::Output> {
        let mut slot = lock(&self.0);
        match slot.result.take() {
            Some(r) => Poll::Ready(r),
            None => {
                slot.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// The map callback's half: stores the result and wakes the task awaiting it, if one is.
fn deliver(slot: &Mutex<MapSlot>, r: core::result::Result<(), wgpu::BufferAsyncError>) {
    let waker = {
        let mut s = lock(slot);
        s.result = Some(r);
        s.waker.take()
    };
    if let Some(w) = waker {
        w.wake();
    }
}

impl Ctx {
    /// Records a copy of each `(buffer, offset, bytes)` into a mappable staging buffer and
    /// submits; returns the staging buffers with their sizes and the bytes wanted.
    fn stage(&self, parts: &[(&Buf, u64, u64)]) -> Vec<(wgpu::Buffer, u64, u64)> {
        let mut staging = Vec::with_capacity(parts.len());
        {
            let mut rec = lock(&self.rec);
            for &(buf, offset, bytes) in parts {
                let size = bytes.max(4).next_multiple_of(256);
                let reused = lock(&self.pool).readback.get_mut(&size).and_then(Vec::pop);
                let st = reused.unwrap_or_else(|| {
                    self.count_alloc(size);
                    self.device.create_buffer(&wgpu::BufferDescriptor {
                        label: Some("cappa readback"),
                        size,
                        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                        mapped_at_creation: false,
                    })
                });
                buf.last_use.store(rec.id, Ordering::Relaxed);
                let copy = bytes.next_multiple_of(4);
                self.encoder(&mut rec)
                    .copy_buffer_to_buffer(&buf.buffer, offset, &st, 0, copy);
                staging.push((st, size, bytes));
            }
            self.flush_locked(&mut rec);
        }
        staging
    }

    /// Copies a mapped staging buffer's `bytes` out, unmaps it and returns it to the pool.
    fn collect(&self, st: wgpu::Buffer, size: u64, bytes: u64) -> Result<Vec<u8>> {
        let out = {
            let view = st
                .get_mapped_range(0..bytes.next_multiple_of(4))
                .map_err(backend_error)?;
            view[..bytes as usize].to_vec()
        };
        st.unmap();
        lock(&self.pool).readback.entry(size).or_default().push(st);
        self.counters.readbacks.fetch_add(1, Ordering::Relaxed);
        self.counters.bytes_read.fetch_add(bytes, Ordering::Relaxed);
        Ok(out)
    }

    /// Copies `bytes` bytes at `offset` of each `(buffer, offset, bytes)` to the host with one
    /// submit, blocking until the device is done. Not available on the web: use
    /// [`Ctx::read_async`].
    #[cfg(target_arch = "wasm32")]
    pub fn read(&self, parts: &[(&Buf, u64, u64)]) -> Result<Vec<Vec<u8>>> {
        let _ = parts;
        Err(cannot_block("reading from the GPU"))
    }

    /// Copies `bytes` bytes at `offset` of each `(buffer, offset, bytes)` to the host with one
    /// submit, blocking until the device is done.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn read(&self, parts: &[(&Buf, u64, u64)]) -> Result<Vec<Vec<u8>>> {
        let staging = self.stage(parts);
        let mut out = Vec::with_capacity(parts.len());
        for (st, size, bytes) in staging {
            let slot = Arc::new(Mutex::new(None));
            let s2 = slot.clone();
            st.map_async(
                wgpu::MapMode::Read,
                0..bytes.next_multiple_of(4),
                move |r| {
                    *lock(&s2) = Some(r);
                },
            );
            // Another thread's poll may have collected this map's callback and not run it yet,
            // so a poll can return before the callback fires: wait for the callback itself.
            let started = std::time::Instant::now();
            let result = loop {
                self.device
                    .poll(wgpu::PollType::wait_indefinitely())
                    .map_err(backend_error)?;
                if let Some(r) = lock(&slot).take() {
                    break r;
                }
                if started.elapsed() > std::time::Duration::from_secs(60) {
                    return Err(Error::Backend(
                        "readback did not complete in 60 s".to_string(),
                    ));
                }
                std::thread::yield_now();
            };
            self.check_error()?;
            result.map_err(backend_error)?;
            out.push(self.collect(st, size, bytes)?);
        }
        Ok(out)
    }

    /// [`Ctx::read`] without blocking: one submit, then every staging buffer's map is awaited.
    /// In a browser the maps complete from the event loop; natively the device is polled once
    /// here (blocking until the submitted work is done) and the awaits then find the callbacks
    /// run, or are woken when another thread's poll runs them.
    pub async fn read_async(&self, parts: &[(&Buf, u64, u64)]) -> Result<Vec<Vec<u8>>> {
        let staging = self.stage(parts);
        let mut maps = Vec::with_capacity(staging.len());
        for (st, _, bytes) in &staging {
            let slot = Arc::new(Mutex::new(MapSlot::default()));
            let s2 = slot.clone();
            st.map_async(
                wgpu::MapMode::Read,
                0..bytes.next_multiple_of(4),
                move |r| deliver(&s2, r),
            );
            maps.push(Mapped(slot));
        }
        #[cfg(not(target_arch = "wasm32"))]
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(backend_error)?;
        let mut out = Vec::with_capacity(staging.len());
        for ((st, size, bytes), mapped) in staging.into_iter().zip(maps) {
            let result = mapped.await;
            self.check_error()?;
            result.map_err(backend_error)?;
            out.push(self.collect(st, size, bytes)?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::future::Future;
    use std::sync::atomic::AtomicUsize;
    use std::task::{Context, Wake};

    struct CountWakes(AtomicUsize);

    impl Wake for CountWakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_map_awaited_before_its_callback_is_woken_by_it() {
        let wakes = Arc::new(CountWakes(AtomicUsize::new(0)));
        let waker = Waker::from(wakes.clone());
        let mut cx = Context::from_waker(&waker);
        let slot = Arc::new(Mutex::new(MapSlot::default()));
        let mut mapped = core::pin::pin!(Mapped(slot.clone()));
        // As in a browser: the first poll comes before the device has mapped the buffer.
        assert!(mapped.as_mut().poll(&mut cx).is_pending());
        assert_eq!(wakes.0.load(Ordering::SeqCst), 0);
        deliver(&slot, Ok(()));
        assert_eq!(
            wakes.0.load(Ordering::SeqCst),
            1,
            "the callback wakes the task"
        );
        assert!(matches!(mapped.as_mut().poll(&mut cx), Poll::Ready(Ok(()))));
    }

    #[test]
    fn a_map_whose_callback_ran_first_is_ready_at_once() {
        let slot = Arc::new(Mutex::new(MapSlot::default()));
        deliver(&slot, Ok(()));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(core::pin::pin!(Mapped(slot))
            .as_mut()
            .poll(&mut cx)
            .is_ready());
    }
}
