//! The buffer pool: storage buffers keyed by size, returned to the pool when the last tensor
//! using one is dropped, so that a warmed-up pass allocates nothing.
//!
//! Reuse rule: a pooled buffer freed while a recording is open may be handed out again for a
//! GPU-side write in the same recording (commands run in order), but never as the target of a
//! `queue.write_buffer` upload, since queue writes land before the whole command buffer runs.

use std::collections::HashMap;
use std::format;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::vec::Vec;

use crate::error::{Error, Result};

use super::device::{lock, Ctx};

/// A pooled storage buffer. Dropping it returns it to the pool.
pub(crate) struct Buf {
    pub buffer: wgpu::Buffer,
    pub size: u64,
    /// The recording that last bound it.
    pub(super) last_use: AtomicU64,
    ctx: Arc<Ctx>,
}

impl core::fmt::Debug for Buf {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Buf({} bytes)", self.size)
    }
}

impl Drop for Buf {
    fn drop(&mut self) {
        let free = FreeBuf {
            buffer: self.buffer.clone(),
            last_use: self.last_use.load(Ordering::Relaxed),
        };
        lock(&self.ctx.pool)
            .storage
            .entry(self.size)
            .or_default()
            .push(free);
    }
}

pub(super) struct FreeBuf {
    buffer: wgpu::Buffer,
    last_use: u64,
}

#[derive(Default)]
pub(super) struct Pool {
    pub(super) storage: HashMap<u64, Vec<FreeBuf>>,
    pub(super) readback: HashMap<u64, Vec<wgpu::Buffer>>,
}

impl Ctx {
    /// A storage buffer of at least `bytes` (rounded up to 256) from the pool. `upload` asks for
    /// one the open recording has not used (see the module docs).
    // wgpu's handles are neither Send nor Sync on the web, which has one thread.
    #[cfg_attr(target_arch = "wasm32", allow(clippy::arc_with_non_send_sync))]
    pub fn buffer(self: &Arc<Self>, bytes: u64, upload: bool) -> Result<Arc<Buf>> {
        let size = bytes.max(4).next_multiple_of(256);
        if size > self.limits.max_buffer_size {
            return Err(Error::InvalidInput(format!(
                "a tensor of {bytes} bytes exceeds the device's buffer limit of {} bytes ({}); \
                 use a smaller batch",
                self.limits.max_buffer_size, self.info.name
            )));
        }
        let current = lock(&self.rec).id;
        let reused = {
            let mut pool = lock(&self.pool);
            let list = pool.storage.entry(size).or_default();
            let pick = list.iter().rposition(|f| !upload || f.last_use < current);
            pick.map(|i| list.swap_remove(i))
        };
        let (buffer, last_use) = match reused {
            Some(f) => (f.buffer, f.last_use),
            None => {
                self.count_alloc(size);
                let b = self.device.create_buffer(&wgpu::BufferDescriptor {
                    label: None,
                    size,
                    usage: wgpu::BufferUsages::STORAGE
                        | wgpu::BufferUsages::COPY_SRC
                        | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                });
                (b, 0)
            }
        };
        Ok(Arc::new(Buf {
            buffer,
            size,
            last_use: AtomicU64::new(last_use),
            ctx: self.clone(),
        }))
    }

    /// A buffer holding `bytes` (padded to 4).
    pub fn upload_bytes(self: &Arc<Self>, bytes: &[u8]) -> Result<Arc<Buf>> {
        let buf = self.buffer(bytes.len() as u64, true)?;
        let whole = bytes.len() / 4 * 4;
        self.queue.write_buffer(&buf.buffer, 0, &bytes[..whole]);
        if whole < bytes.len() {
            let mut tail = [0u8; 4];
            tail[..bytes.len() - whole].copy_from_slice(&bytes[whole..]);
            self.queue.write_buffer(&buf.buffer, whole as u64, &tail);
        }
        Ok(buf)
    }
}
