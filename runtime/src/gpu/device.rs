//! The wgpu device behind [`super::GpuBackend`]: adapter choice, limits, options, counters and
//! errors. The other parts of the device context live beside this file: the buffer pool
//! (`pool.rs`), the pipeline cache (`pipelines.rs`), the recorder that puts every dispatch of a
//! pass into one command encoder (`recorder.rs`), and reading back (`readback.rs`).
//!
//! The device is opened with [`Ctx::new`] (blocking, native programs) or [`Ctx::new_async`] (web
//! pages). On the web the blocking forms are errors, and shader and pipeline errors, which cannot
//! be awaited where kernels are compiled, reach the device's uncaptured-error handler and fail the
//! next readback.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::vec::Vec;
use std::{format, string::String, string::ToString};

use crate::error::{Error, Result};

use super::pipelines::PipelineKey;
use super::pool::Pool;
use super::recorder::Recorder;

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
pub(super) struct Counters {
    pub(super) buffers_created: AtomicU64,
    pub(super) bytes_allocated: AtomicU64,
    pub(super) submits: AtomicU64,
    pub(super) readbacks: AtomicU64,
    pub(super) bytes_read: AtomicU64,
    pub(super) dispatches: AtomicU64,
    pub(super) pipelines: AtomicU64,
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
    pub(super) pool: Mutex<Pool>,
    pub(super) rec: Mutex<Recorder>,
    pub(super) pipelines: Mutex<HashMap<PipelineKey, wgpu::ComputePipeline>>,
    pub(super) modules: Mutex<HashMap<&'static str, wgpu::ShaderModule>>,
    pub(super) layouts: Mutex<HashMap<Vec<bool>, (wgpu::BindGroupLayout, wgpu::PipelineLayout)>>,
    pub(super) counters: Counters,
    pub(super) error: Arc<Mutex<Option<String>>>,
    pub(super) dummy: wgpu::Buffer,
    pub(super) dummy_rw: wgpu::Buffer,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves plain data behind; keep going.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub(super) fn backend_error(e: impl core::fmt::Display) -> Error {
    Error::Backend(format!("{e}"))
}

/// Stands for an error scope on the web, where none is pushed (see [`Ctx::pop`]).
#[cfg(target_arch = "wasm32")]
pub(super) struct NoScope;

/// Why a blocking call is refused in a web page.
#[cfg(target_arch = "wasm32")]
pub(super) fn cannot_block(what: &str) -> Error {
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
            rec: Mutex::new(Recorder::new()),
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

    pub(super) fn count_alloc(&self, size: u64) {
        self.counters
            .buffers_created
            .fetch_add(1, Ordering::Relaxed);
        self.counters
            .bytes_allocated
            .fetch_add(size, Ordering::Relaxed);
    }

    /// Catches validation errors of what follows, natively. On the web an error scope can only
    /// be awaited, so there is none: errors go to the uncaptured-error handler instead.
    #[cfg(not(target_arch = "wasm32"))]
    pub(super) fn error_scope(&self) -> wgpu::ErrorScopeGuard {
        self.device.push_error_scope(wgpu::ErrorFilter::Validation)
    }

    #[cfg(target_arch = "wasm32")]
    pub(super) fn error_scope(&self) -> NoScope {
        NoScope
    }

    /// The error caught by [`Ctx::error_scope`], if any.
    #[cfg(not(target_arch = "wasm32"))]
    pub(super) fn pop(scope: wgpu::ErrorScopeGuard) -> Option<wgpu::Error> {
        pollster::block_on(scope.pop())
    }

    #[cfg(target_arch = "wasm32")]
    pub(super) fn pop(_scope: NoScope) -> Option<wgpu::Error> {
        None
    }
}
