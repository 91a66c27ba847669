//! The pipeline cache: shader modules compiled once per shader, bind-group layouts once per
//! binding list, compute pipelines once per (shader, entry point, specialisation).

use std::format;
use std::sync::atomic::Ordering;
use std::vec;
use std::vec::Vec;

use crate::error::{Error, Result};

use super::device::{lock, Ctx};
use super::shaders::{self, Shader};

#[derive(Clone, PartialEq, Eq, Hash)]
pub(super) struct PipelineKey {
    shader: &'static str,
    entry: &'static str,
    constants: Vec<(&'static str, u64)>,
}

/// A kernel: shader, entry point and specialisation constants.
pub(crate) struct Kernel<'a> {
    pub shader: &'static Shader,
    pub entry: &'static str,
    pub constants: &'a [(&'static str, f64)],
}

impl Kernel<'static> {
    /// Entry point `entry` of `shader`, which has no override constants.
    pub const fn plain(shader: &'static Shader, entry: &'static str) -> Self {
        Kernel {
            shader,
            entry,
            constants: &[],
        }
    }
}

impl Ctx {
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

    pub(super) fn pipeline(
        &self,
        k: &Kernel<'_>,
    ) -> Result<(wgpu::ComputePipeline, wgpu::BindGroupLayout)> {
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
}
