//! The wgpu device behind [`super::GpuBackend`]: adapter choice, limits, the buffer pool, the
//! pipeline cache, and the recorder that puts every dispatch of a pass into one command encoder
//! until something has to be read back.
//!
//! Buffer reuse rule: a pooled buffer freed while a recording is open may be handed out again for
//! a GPU-side write in the same recording (commands run in order), but never as the target of a
//! `queue.write_buffer` upload, since queue writes land before the whole command buffer runs.
//!
//! Reading back comes in two forms: [`Ctx::read`] blocks until the device has mapped the memory
//! (native programs), [`Ctx::read_async`] awaits the map callback instead (web pages, where the
//! callback runs only once control returns to the browser's event loop). Likewise the device
//! is opened with [`Ctx::new`] (blocking) or [`Ctx::new_async`]. On the web the blocking forms
//! are errors, and shader and pipeline errors, which cannot be awaited where kernels are
//! compiled, reach the device's uncaptured-error handler and fail the next readback.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Poll, Waker};
use std::vec;
use std::vec::Vec;
use std::{format, string::String, string::ToString};

use crate::error::{Error, Result};

use super::shaders::{self, Shader};

/// Counters of what the backend did, for tests and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GpuStats {
    /// Buffers created (storage, readback staging and uniform blocks).
    pub buffers_created: u64,
    /// Bytes in those buffers.
    pub bytes_allocated: u64,
    /// Command buffers submitted.
    pub submits: u64,
    /// Reads of device memory back to the host.
    pub readbacks: u64,
    /// Bytes read back.
    pub bytes_read: u64,
    /// Compute dispatches recorded.
    pub dispatches: u64,
    /// Compute pipelines compiled.
    pub pipelines: u64,
}

#[derive(Default)]
struct Counters {
    buffers_created: AtomicU64,
    bytes_allocated: AtomicU64,
    submits: AtomicU64,
    readbacks: AtomicU64,
    bytes_read: AtomicU64,
    dispatches: AtomicU64,
    pipelines: AtomicU64,
}

/// A pooled storage buffer. Dropping it returns it to the pool.
pub(crate) struct Buf {
    pub buffer: wgpu::Buffer,
    pub size: u64,
    /// The recording that last bound it.
    last_use: AtomicU64,
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

struct FreeBuf {
    buffer: wgpu::Buffer,
    last_use: u64,
}

#[derive(Default)]
struct Pool {
    storage: HashMap<u64, Vec<FreeBuf>>,
    readback: HashMap<u64, Vec<wgpu::Buffer>>,
}

/// Uniform parameters of the dispatches of one recording, in 64 KiB blocks written to the
/// device just before the submit.
struct UniformBlock {
    buffer: wgpu::Buffer,
    host: Vec<u8>,
}

const UNIFORM_BLOCK: u64 = 1 << 16;

struct Recorder {
    id: u64,
    encoder: Option<wgpu::CommandEncoder>,
    pass: Option<wgpu::ComputePass<'static>>,
    blocks: Vec<UniformBlock>,
    block: usize,
    cursor: u64,
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct PipelineKey {
    shader: &'static str,
    entry: &'static str,
    constants: Vec<(&'static str, u64)>,
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

/// A kernel: shader, entry point and specialisation constants.
pub(crate) struct Kernel<'a> {
    pub shader: &'static Shader,
    pub entry: &'static str,
    pub constants: &'a [(&'static str, f64)],
}

/// Options for creating the device.
#[derive(Debug, Clone, PartialEq)]
pub struct GpuOptions {
    /// Keep naga's runtime checks (bounds checks, forced loop bounding) in the shaders. Default:
    /// on in debug builds, off in release builds, where the kernels' own index clamping (tested)
    /// keeps accesses in bounds.
    pub runtime_checks: bool,
    /// Which matmul kernel to use; `None` picks by adapter (register-blocked on CPU-like
    /// adapters such as lavapipe, workgroup-tiled on real GPUs).
    pub matmul: Option<MatmulKernel>,
    /// Largest storage binding in bytes; `None` uses the device limit. Tests lower it to
    /// exercise the splitting of large tensors.
    pub max_binding: Option<u64>,
    /// Keep bf16 and f16 weights 16-bit on the device (default true).
    pub keep_16bit_weights: bool,
    /// The wgpu backends to look for an adapter on; `None`: `CAPPA_GPU_BACKENDS`, else
    /// `WGPU_BACKEND`, else Vulkan, Metal, DX12 and WebGPU — OpenGL only when asked for (see
    /// [`super::adapter`]).
    pub backends: Option<wgpu::Backends>,
}

impl Default for GpuOptions {
    fn default() -> Self {
        GpuOptions {
            runtime_checks: cfg!(debug_assertions),
            matmul: None,
            max_binding: None,
            keep_16bit_weights: true,
            backends: None,
        }
    }
}

/// The two matmul kernels of `wgsl/matmul.wgsl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatmulKernel {
    /// `main_reg`: register-blocked, no workgroup memory (CPU-like adapters).
    Register,
    /// `main_tiled`: workgroup-memory tiles (GPUs).
    Tiled,
}

pub(crate) struct Ctx {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    pub options: GpuOptions,
    pub matmul: MatmulKernel,
    pub max_binding: u64,
    pool: Mutex<Pool>,
    rec: Mutex<Recorder>,
    pipelines: Mutex<HashMap<PipelineKey, wgpu::ComputePipeline>>,
    modules: Mutex<HashMap<&'static str, wgpu::ShaderModule>>,
    layouts: Mutex<HashMap<Vec<bool>, (wgpu::BindGroupLayout, wgpu::PipelineLayout)>>,
    counters: Counters,
    error: Arc<Mutex<Option<String>>>,
    dummy: wgpu::Buffer,
    dummy_rw: wgpu::Buffer,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves plain data behind; keep going.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn backend_error(e: impl core::fmt::Display) -> Error {
    Error::Backend(format!("{e}"))
}

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

/// Stands for an error scope on the web, where none is pushed (see [`Ctx::pop`]).
#[cfg(target_arch = "wasm32")]
struct NoScope;

/// Why a blocking call is refused in a web page.
#[cfg(target_arch = "wasm32")]
fn cannot_block(what: &str) -> Error {
    Error::Backend(format!(
        "{what} cannot block in a web page; use the async API (GpuBackend::new_async, \
         Model::caption_async, ...)"
    ))
}

impl Ctx {
    /// [`Ctx::new_async`], blocking. Not available on the web.
    pub fn new(options: GpuOptions) -> Result<Arc<Ctx>> {
        #[cfg(target_arch = "wasm32")]
        {
            let _ = options;
            Err(cannot_block("opening a GPU device"))
        }
        #[cfg(not(target_arch = "wasm32"))]
        pollster::block_on(Self::new_async(options))
    }

    /// Finds the best adapter on the backends `options` allows (see [`super::adapter`]) and
    /// opens a device with the WebGPU default limits, plus the adapter's buffer-size limits.
    pub async fn new_async(options: GpuOptions) -> Result<Arc<Ctx>> {
        let backends = super::adapter::backends(options.backends)?;
        let adapter = super::adapter::pick(backends, false)
            .await?
            .ok_or_else(|| super::adapter::none_found(backends))?;
        Self::on_adapter(adapter, options).await
    }

    /// Opens a device on `adapter`.
    // wgpu's handles are neither Send nor Sync on the web, which has one thread.
    #[cfg_attr(target_arch = "wasm32", allow(clippy::arc_with_non_send_sync))]
    pub async fn on_adapter(adapter: wgpu::Adapter, options: GpuOptions) -> Result<Arc<Ctx>> {
        let info = adapter.get_info();
        let have = adapter.limits();
        let mut limits = wgpu::Limits::default();
        if !limits.check_limits(&have) {
            limits = wgpu::Limits::downlevel_defaults();
        }
        limits.max_buffer_size = have.max_buffer_size;
        limits.max_storage_buffer_binding_size = have.max_storage_buffer_binding_size;
        let request = adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("cappa"),
            required_features: wgpu::Features::empty(),
            required_limits: limits.clone(),
            ..Default::default()
        });
        #[cfg(not(target_arch = "wasm32"))]
        let opened = super::adapter::quietly(|| pollster::block_on(request));
        #[cfg(target_arch = "wasm32")]
        let opened = request.await;
        let (device, queue) =
            opened.map_err(|e| Error::Backend(format!("cannot open {}: {e}", info.name)))?;
        let error = Arc::new(Mutex::new(None::<String>));
        let sink = error.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            let mut slot = lock(&sink);
            if slot.is_none() {
                *slot = Some(e.to_string());
            }
        }));
        let matmul = options.matmul.unwrap_or(match info.device_type {
            wgpu::DeviceType::Cpu => MatmulKernel::Register,
            _ => MatmulKernel::Tiled,
        });
        let max_binding = options
            .max_binding
            .unwrap_or(u64::MAX)
            .min(limits.max_storage_buffer_binding_size)
            .min(limits.max_buffer_size);
        let dummy_buffer = || {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("cappa dummy"),
                size: 256,
                usage: wgpu::BufferUsages::STORAGE,
                mapped_at_creation: false,
            })
        };
        let (dummy, dummy_rw) = (dummy_buffer(), dummy_buffer());
        Ok(Arc::new(Ctx {
            device,
            queue,
            info,
            limits,
            options,
            matmul,
            max_binding,
            pool: Mutex::new(Pool::default()),
            rec: Mutex::new(Recorder {
                id: 1,
                encoder: None,
                pass: None,
                blocks: Vec::new(),
                block: 0,
                cursor: 0,
            }),
            pipelines: Mutex::new(HashMap::new()),
            modules: Mutex::new(HashMap::new()),
            layouts: Mutex::new(HashMap::new()),
            counters: Counters::default(),
            error,
            dummy,
            dummy_rw,
        }))
    }

    /// Counters so far.
    pub fn stats(&self) -> GpuStats {
        let c = &self.counters;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        GpuStats {
            buffers_created: g(&c.buffers_created),
            bytes_allocated: g(&c.bytes_allocated),
            submits: g(&c.submits),
            readbacks: g(&c.readbacks),
            bytes_read: g(&c.bytes_read),
            dispatches: g(&c.dispatches),
            pipelines: g(&c.pipelines),
        }
    }

    /// Fails with the first device error reported since the last check.
    pub fn check_error(&self) -> Result<()> {
        match lock(&self.error).take() {
            Some(e) => Err(Error::Backend(e)),
            None => Ok(()),
        }
    }

    fn count_alloc(&self, size: u64) {
        self.counters
            .buffers_created
            .fetch_add(1, Ordering::Relaxed);
        self.counters
            .bytes_allocated
            .fetch_add(size, Ordering::Relaxed);
    }

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

    fn module(&self, shader: &'static Shader) -> Result<wgpu::ShaderModule> {
        if let Some(m) = lock(&self.modules).get(shader.name) {
            return Ok(m.clone());
        }
        let desc = wgpu::ShaderModuleDescriptor {
            label: Some(shader.name),
            source: wgpu::ShaderSource::Wgsl(shader.source().into()),
        };
        let scope = self.error_scope();
        let module = if self.options.runtime_checks {
            self.device.create_shader_module(desc)
        } else {
            // SAFETY: every kernel clamps or guards its own indices (see each .wgsl file) and is
            // tested against the CPU reference on edge sizes with the checks on.
            unsafe {
                self.device
                    .create_shader_module_trusted(desc, wgpu::ShaderRuntimeChecks::unchecked())
            }
        };
        if let Some(e) = Self::pop(scope) {
            return Err(Error::Backend(format!(
                "shader {} failed: {e}",
                shader.name
            )));
        }
        lock(&self.modules).insert(shader.name, module.clone());
        Ok(module)
    }

    /// Catches validation errors of what follows, natively. On the web an error scope can only
    /// be awaited, so there is none: errors go to the uncaptured-error handler instead.
    #[cfg(not(target_arch = "wasm32"))]
    fn error_scope(&self) -> wgpu::ErrorScopeGuard {
        self.device.push_error_scope(wgpu::ErrorFilter::Validation)
    }

    #[cfg(target_arch = "wasm32")]
    fn error_scope(&self) -> NoScope {
        NoScope
    }

    /// The error caught by [`Ctx::error_scope`], if any.
    #[cfg(not(target_arch = "wasm32"))]
    fn pop(scope: wgpu::ErrorScopeGuard) -> Option<wgpu::Error> {
        pollster::block_on(scope.pop())
    }

    #[cfg(target_arch = "wasm32")]
    fn pop(_scope: NoScope) -> Option<wgpu::Error> {
        None
    }

    fn layout(&self, read_only: &[bool]) -> (wgpu::BindGroupLayout, wgpu::PipelineLayout) {
        let mut layouts = lock(&self.layouts);
        layouts
            .entry(read_only.to_vec())
            .or_insert_with(|| {
                let mut entries = vec![wgpu::BindGroupLayoutEntry {
                    binding: 0,
                    visibility: wgpu::ShaderStages::COMPUTE,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                    count: None,
                }];
                for (i, &ro) in read_only.iter().enumerate() {
                    entries.push(wgpu::BindGroupLayoutEntry {
                        binding: i as u32 + 1,
                        visibility: wgpu::ShaderStages::COMPUTE,
                        ty: wgpu::BindingType::Buffer {
                            ty: wgpu::BufferBindingType::Storage { read_only: ro },
                            has_dynamic_offset: false,
                            min_binding_size: None,
                        },
                        count: None,
                    });
                }
                let bgl = self
                    .device
                    .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                        label: None,
                        entries: &entries,
                    });
                let pl = self
                    .device
                    .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                        label: None,
                        bind_group_layouts: &[Some(&bgl)],
                        immediate_size: 0,
                    });
                (bgl, pl)
            })
            .clone()
    }

    fn pipeline(&self, k: &Kernel<'_>) -> Result<(wgpu::ComputePipeline, wgpu::BindGroupLayout)> {
        debug_assert!(
            shaders::is_declared(k.shader, k.entry, k.constants),
            "{}:{} {:?} is not in the shader's declared specialisations",
            k.shader.name,
            k.entry,
            k.constants
        );
        let (bgl, layout) = self.layout(k.shader.read_only);
        let key = PipelineKey {
            shader: k.shader.name,
            entry: k.entry,
            constants: k.constants.iter().map(|(n, v)| (*n, v.to_bits())).collect(),
        };
        if let Some(p) = lock(&self.pipelines).get(&key) {
            return Ok((p.clone(), bgl));
        }
        let module = self.module(k.shader)?;
        let scope = self.error_scope();
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(k.entry),
                layout: Some(&layout),
                module: &module,
                entry_point: Some(k.entry),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants: k.constants,
                    zero_initialize_workgroup_memory: false,
                },
                cache: None,
            });
        if let Some(e) = Self::pop(scope) {
            return Err(Error::Backend(format!(
                "pipeline {}:{} failed: {e}",
                k.shader.name, k.entry
            )));
        }
        self.counters.pipelines.fetch_add(1, Ordering::Relaxed);
        lock(&self.pipelines).insert(key, pipeline.clone());
        Ok((pipeline, bgl))
    }

    /// Records one dispatch of `k` over `groups` workgroups with uniform `params` and the
    /// storage bindings `args` (in binding order 1, 2, ...).
    pub fn dispatch(
        &self,
        k: &Kernel<'_>,
        params: &[u32],
        args: &[Arg<'_>],
        groups: [u32; 3],
    ) -> Result<()> {
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
        let (ubuf, uoff) = self.uniform_slot(&mut rec, bytemuck::cast_slice(params));
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: &ubuf,
                offset: uoff,
                size: core::num::NonZeroU64::new((params.len() * 4) as u64),
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

    fn encoder<'r>(&self, rec: &'r mut Recorder) -> &'r mut wgpu::CommandEncoder {
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

    fn flush_locked(&self, rec: &mut Recorder) {
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
