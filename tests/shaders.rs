//! Every WGSL kernel parses and validates with naga (the version wgpu uses), for every
//! specialisation the backend may ask for, and translates to the other native shading languages
//! (SPIR-V for Vulkan, MSL for Metal, HLSL for DX12).

#![cfg(feature = "gpu")]

use cappa::gpu::shaders::ALL;
use naga::back::pipeline_constants::process_overrides;
use naga::valid::{Capabilities, ValidationFlags, Validator};

fn validator() -> Validator {
    Validator::new(ValidationFlags::all(), Capabilities::empty())
}

#[test]
fn every_shader_and_specialisation_validates() {
    let mut checked = 0;
    for shader in ALL {
        let src = shader.source();
        let module = naga::front::wgsl::parse_str(&src)
            .unwrap_or_else(|e| panic!("{}: {}", shader.name, e.emit_to_string(&src)));
        let info = validator()
            .validate(&module)
            .unwrap_or_else(|e| panic!("{}: {}", shader.name, e.emit_to_string(&src)));
        for entry in shader.entries {
            assert!(
                module.entry_points.iter().any(|e| e.name == *entry),
                "{} has no entry point {entry}",
                shader.name
            );
            for constants in shader.specialisations() {
                let consts: naga::back::PipelineConstants =
                    constants.iter().map(|(n, v)| (n.to_string(), *v)).collect();
                let (m, i) = process_overrides(
                    &module,
                    &info,
                    Some((naga::ShaderStage::Compute, entry)),
                    &consts,
                )
                .unwrap_or_else(|e| panic!("{}:{entry} {constants:?}: {e}", shader.name));
                // The specialised module must validate too (and stay within WebGPU's default
                // limits of 256 invocations per workgroup).
                let info2 = validator().validate(&m).unwrap_or_else(|e| {
                    panic!(
                        "{}:{entry} {constants:?}: {}",
                        shader.name,
                        e.emit_to_string(&src)
                    )
                });
                let ep = m.entry_points.iter().find(|e| e.name == *entry).unwrap();
                let invocations: u32 = ep.workgroup_size.iter().product();
                assert!(
                    invocations <= 256,
                    "{}:{entry}: {invocations} invocations",
                    shader.name
                );
                let _ = i;
                let _ = info2;
                checked += 1;
            }
        }
    }
    assert!(checked > 100, "only {checked} specialisations checked");
}

#[test]
fn every_shader_translates_to_spirv_msl_and_hlsl() {
    for shader in ALL {
        let src = shader.source();
        let module = naga::front::wgsl::parse_str(&src).unwrap();
        let info = validator().validate(&module).unwrap();
        for entry in shader.entries {
            let constants = &shader.specialisations()[0];
            let consts: naga::back::PipelineConstants =
                constants.iter().map(|(n, v)| (n.to_string(), *v)).collect();
            let (m, i) = process_overrides(
                &module,
                &info,
                Some((naga::ShaderStage::Compute, entry)),
                &consts,
            )
            .unwrap();
            naga::back::spv::write_vec(&m, &i, &Default::default(), None)
                .unwrap_or_else(|e| panic!("{}:{entry} SPIR-V: {e}", shader.name));
            let msl_opts = naga::back::msl::Options::default();
            let pipeline = naga::back::msl::PipelineOptions {
                entry_point: Some((naga::ShaderStage::Compute, entry.to_string())),
                ..Default::default()
            };
            naga::back::msl::write_string(&m, &i, &msl_opts, &pipeline)
                .unwrap_or_else(|e| panic!("{}:{entry} MSL: {e}", shader.name));
            let mut hlsl = String::new();
            let hlsl_opts = naga::back::hlsl::Options::default();
            let hlsl_pipeline = Default::default();
            let mut w = naga::back::hlsl::Writer::new(&mut hlsl, &hlsl_opts, &hlsl_pipeline);
            w.write(&m, &i, None)
                .unwrap_or_else(|e| panic!("{}:{entry} HLSL: {e}", shader.name));
        }
    }
}
