//! The recorder: every dispatch, copy and clear of a pass goes into one command encoder (and
//! one compute pass while dispatches follow each other), with the uniform parameters of its
//! dispatches in 64 KiB blocks written just before the single submit. Nothing is submitted until
//! the host asks for data or calls [`Ctx::flush`].

use std::format;
use std::sync::atomic::Ordering;
use std::vec;
use std::vec::Vec;

use crate::error::{Error, Result};

use super::device::{lock, Ctx};
use super::pipelines::Kernel;
use super::pool::Buf;
use super::shaders::Uniform;

/// Uniform parameters of the dispatches of one recording, in 64 KiB blocks written to the
/// device just before the submit.
struct UniformBlock {
    buffer: wgpu::Buffer,
    host: Vec<u8>,
}

const UNIFORM_BLOCK: u64 = 1 << 16;

pub(super) struct Recorder {
    pub(super) id: u64,
    encoder: Option<wgpu::CommandEncoder>,
    pass: Option<wgpu::ComputePass<'static>>,
    blocks: Vec<UniformBlock>,
    block: usize,
    cursor: u64,
}

impl Recorder {
    pub(super) fn new() -> Self {
        Recorder {
            id: 1,
            encoder: None,
            pass: None,
            blocks: Vec::new(),
            block: 0,
            cursor: 0,
        }
    }
}

/// What a kernel binds: a window `[offset, offset + size)` of a buffer.
pub(crate) struct Arg<'a> {
    buffer: &'a wgpu::Buffer,
    /// The pooled buffer whose last use to record (none for the dummies).
    tracked: Option<&'a Buf>,
    offset: u64,
    size: u64,
}

impl<'a> Arg<'a> {
    /// The whole buffer.
    pub fn whole(buf: &'a Buf) -> Self {
        Self::window(buf, 0, buf.size)
    }

    /// `size` bytes from `offset`.
    pub fn window(buf: &'a Buf, offset: u64, size: u64) -> Self {
        Arg {
            buffer: &buf.buffer,
            tracked: Some(buf),
            offset,
            size,
        }
    }
}

impl Ctx {
    /// Records one dispatch of `k` over `groups` workgroups with the uniform block `params`
    /// (binding 0; the shader's `Params`) and the storage bindings `args` (1, 2, ... in order).
    pub fn dispatch<P: Uniform>(
        &self,
        k: &Kernel<'_>,
        params: &P,
        args: &[Arg<'_>],
        groups: [u32; 3],
    ) -> Result<()> {
        debug_assert_eq!(
            k.shader.params,
            &P::LAYOUT,
            "{}: the params struct is not the shader's",
            k.shader.name
        );
        debug_assert_eq!(
            args.len(),
            k.shader.read_only.len(),
            "{}: one argument per storage binding",
            k.shader.name
        );
        if groups.contains(&0) {
            return Ok(());
        }
        let max = self.limits.max_compute_workgroups_per_dimension;
        if groups.iter().any(|&g| g > max) {
            return Err(Error::InvalidInput(format!(
                "{}:{} needs {groups:?} workgroups, over the device limit {max} per dimension; \
                 use a smaller batch",
                k.shader.name, k.entry
            )));
        }
        for a in args.iter().filter(|a| a.tracked.is_some()) {
            if a.size > self.max_binding {
                return Err(Error::InvalidInput(format!(
                    "{}:{} binds {} bytes, over the device's per-binding limit of {} bytes; \
                     use a smaller batch",
                    k.shader.name, k.entry, a.size, self.max_binding
                )));
            }
        }
        let (pipeline, bgl) = self.pipeline(k)?;
        let mut rec = lock(&self.rec);
        let params = bytemuck::bytes_of(params);
        let (ubuf, uoff) = self.uniform_slot(&mut rec, params);
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: &ubuf,
                offset: uoff,
                size: core::num::NonZeroU64::new(params.len() as u64),
            }),
        }];
        for (i, a) in args.iter().enumerate() {
            if let Some(b) = a.tracked {
                b.last_use.store(rec.id, Ordering::Relaxed);
            }
            entries.push(wgpu::BindGroupEntry {
                binding: i as u32 + 1,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: a.buffer,
                    offset: a.offset,
                    size: core::num::NonZeroU64::new(a.size),
                }),
            });
        }
        let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &bgl,
            entries: &entries,
        });
        let pass = self.pass(&mut rec);
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &bind_group, &[]);
        pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
        self.counters.dispatches.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// A small buffer to bind where a kernel's optional read-only input is absent.
    pub fn dummy(&self) -> Arg<'_> {
        Arg {
            buffer: &self.dummy,
            tracked: None,
            offset: 0,
            size: 256,
        }
    }

    /// The same for an absent read-write output (a separate buffer: one buffer may not be bound
    /// read-only and read-write in the same dispatch).
    pub fn dummy_rw(&self) -> Arg<'_> {
        Arg {
            buffer: &self.dummy_rw,
            tracked: None,
            offset: 0,
            size: 256,
        }
    }

    pub(super) fn encoder<'r>(&self, rec: &'r mut Recorder) -> &'r mut wgpu::CommandEncoder {
        rec.pass = None; // end the open compute pass, if any
        rec.encoder
            .get_or_insert_with(|| self.device.create_command_encoder(&Default::default()))
    }

    fn pass<'r>(&self, rec: &'r mut Recorder) -> &'r mut wgpu::ComputePass<'static> {
        if rec.pass.is_none() {
            let enc = self.encoder(rec);
            let pass = enc
                .begin_compute_pass(&Default::default())
                .forget_lifetime();
            rec.pass = Some(pass);
        }
        rec.pass.as_mut().expect("pass just opened")
    }

    /// A 256-byte-aligned slot holding `bytes` in this recording's uniform blocks.
    fn uniform_slot(&self, rec: &mut Recorder, bytes: &[u8]) -> (wgpu::Buffer, u64) {
        let align = (self.limits.min_uniform_buffer_offset_alignment as u64).max(16);
        let need = (bytes.len() as u64).next_multiple_of(align);
        if rec.cursor + need > UNIFORM_BLOCK {
            rec.block += 1;
            rec.cursor = 0;
        }
        if rec.block == rec.blocks.len() {
            self.count_alloc(UNIFORM_BLOCK);
            rec.blocks.push(UniformBlock {
                buffer: self.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("cappa uniforms"),
                    size: UNIFORM_BLOCK,
                    usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                }),
                host: vec![0; UNIFORM_BLOCK as usize],
            });
        }
        let off = rec.cursor;
        let block = &mut rec.blocks[rec.block];
        block.host[off as usize..off as usize + bytes.len()].copy_from_slice(bytes);
        rec.cursor += need;
        (block.buffer.clone(), off)
    }

    /// Records a copy (ending the open compute pass).
    pub fn copy(&self, src: &Buf, src_off: u64, dst: &Buf, dst_off: u64, bytes: u64) {
        let mut rec = lock(&self.rec);
        src.last_use.store(rec.id, Ordering::Relaxed);
        dst.last_use.store(rec.id, Ordering::Relaxed);
        self.encoder(&mut rec).copy_buffer_to_buffer(
            &src.buffer,
            src_off,
            &dst.buffer,
            dst_off,
            bytes,
        );
    }

    /// Records a fill with zeros.
    pub fn clear(&self, buf: &Buf) {
        let mut rec = lock(&self.rec);
        buf.last_use.store(rec.id, Ordering::Relaxed);
        self.encoder(&mut rec).clear_buffer(&buf.buffer, 0, None);
    }

    /// Submits everything recorded so far (one command buffer).
    pub fn flush(&self) -> Result<()> {
        let mut rec = lock(&self.rec);
        self.flush_locked(&mut rec);
        drop(rec);
        self.check_error()
    }

    pub(super) fn flush_locked(&self, rec: &mut Recorder) {
        rec.pass = None;
        let Some(encoder) = rec.encoder.take() else {
            return;
        };
        for (i, block) in rec.blocks.iter().enumerate().take(rec.block + 1) {
            let used = if i == rec.block {
                rec.cursor
            } else {
                UNIFORM_BLOCK
            };
            if used > 0 {
                self.queue
                    .write_buffer(&block.buffer, 0, &block.host[..used as usize]);
            }
        }
        self.queue.submit([encoder.finish()]);
        self.counters.submits.fetch_add(1, Ordering::Relaxed);
        rec.id += 1;
        rec.block = 0;
        rec.cursor = 0;
    }
}
