//! Every WGSL kernel parses and validates with naga (the version wgpu uses), for every
//! specialisation the backend may ask for, and translates to the other native shading languages
//! (SPIR-V for Vulkan, MSL for Metal, HLSL for DX12). And the host's tables of each shader
//! (`cappa::gpu::shaders`: the uniform `Params` struct, which storage bindings are read-only,
//! the override constants) say what the WGSL declares, as naga reads it, so that a mismatch
//! fails here rather than on a user's GPU.

#![cfg(feature = "gpu")]

use cappa::gpu::shaders::{Field, Layout, Shader, ALL};
use naga::back::pipeline_constants::process_overrides;
use naga::valid::{Capabilities, ValidationFlags, Validator};
use naga::{AddressSpace, ScalarKind, StorageAccess, TypeInner};

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

/// Where `shader`'s host table disagrees with its WGSL, one line each.
fn contract_mismatches(shader: &Shader) -> Vec<String> {
    let src = shader.source();
    let module = naga::front::wgsl::parse_str(&src)
        .unwrap_or_else(|e| panic!("{}: {}", shader.name, e.emit_to_string(&src)));
    let mut bad = Vec::new();
    let mut say = |m: String| bad.push(format!("{}: {m}", shader.name));
    let mut storage = Vec::new();
    let mut uniform = None;
    for (_, var) in module.global_variables.iter() {
        let Some(rb) = &var.binding else { continue };
        let name = var.name.clone().unwrap_or_default();
        if rb.group != 0 {
            say(format!(
                "`{name}` is in bind group {}, the host binds group 0",
                rb.group
            ));
        }
        match var.space {
            AddressSpace::Uniform if rb.binding == 0 => uniform = Some(var.ty),
            AddressSpace::Uniform => say(format!(
                "`{name}` is a uniform at binding {}; the host's uniform block is binding 0",
                rb.binding
            )),
            AddressSpace::Storage { access } => {
                storage.push((rb.binding, name, !access.contains(StorageAccess::STORE)))
            }
            other => say(format!("`{name}` (binding {}) is {other:?}", rb.binding)),
        }
    }
    // Storage bindings: 1, 2, ... with the host's access, one per `read_only` entry.
    storage.sort();
    let wgsl: Vec<u32> = storage.iter().map(|s| s.0).collect();
    let host: Vec<u32> = (1..=shader.read_only.len() as u32).collect();
    if wgsl != host {
        say(format!(
            "storage bindings {wgsl:?} in the WGSL, {host:?} in the host's read_only list"
        ));
    }
    for (binding, name, read_only) in &storage {
        let host = shader.read_only.get(*binding as usize - 1);
        if host.is_some_and(|h| h != read_only) {
            let access = |ro: bool| if ro { "read" } else { "read_write" };
            say(format!(
                "binding {binding} (`{name}`) is var<storage, {}> but the host says {}",
                access(*read_only),
                access(!read_only)
            ));
        }
    }
    // The uniform block: the host's `Params` struct, field by field.
    let layout = shader.params;
    match uniform.map(|ty| &module.types[ty]) {
        None => say("no uniform block at binding 0".into()),
        Some(ty) => match &ty.inner {
            TypeInner::Struct { members, span } => {
                if ty.name.as_deref() != Some("Params") {
                    say(format!(
                        "the uniform block is a {:?}, not `Params`",
                        ty.name
                    ));
                }
                if *span as usize != layout.size {
                    say(format!(
                        "Params is {span} bytes in the WGSL, {} bytes on the host",
                        layout.size
                    ));
                }
                let wgsl: Vec<(String, u32, String)> = members
                    .iter()
                    .map(|m| {
                        let ty = match &module.types[m.ty].inner {
                            TypeInner::Scalar(s) => match (s.kind, s.width) {
                                (ScalarKind::Uint, 4) => "u32".to_string(),
                                (ScalarKind::Float, 4) => "f32".to_string(),
                                (ScalarKind::Sint, 4) => "i32".to_string(),
                                other => format!("{other:?}"),
                            },
                            other => format!("{other:?}"),
                        };
                        (m.name.clone().unwrap_or_default(), m.offset, ty)
                    })
                    .collect();
                let host: Vec<(String, u32, String)> = layout
                    .fields
                    .iter()
                    .map(|f| (f.name.to_string(), f.offset as u32, f.ty.to_string()))
                    .collect();
                for i in 0..wgsl.len().max(host.len()) {
                    let (w, h) = (wgsl.get(i), host.get(i));
                    if w != h {
                        say(format!(
                            "Params field {i} (name, offset, type) is {w:?} in the WGSL, {h:?} \
                             on the host"
                        ));
                    }
                }
            }
            other => say(format!("the uniform block is {other:?}, not a struct")),
        },
    }
    // Override constants: exactly those the host specialises.
    let mut wgsl: Vec<String> = module
        .overrides
        .iter()
        .map(|(_, o)| o.name.clone().unwrap_or_default())
        .collect();
    let mut host: Vec<String> = shader
        .overrides
        .iter()
        .map(|(n, _)| n.to_string())
        .collect();
    wgsl.sort();
    host.sort();
    if wgsl != host {
        say(format!(
            "overrides {wgsl:?} in the WGSL, {host:?} on the host"
        ));
    }
    bad
}

#[test]
fn host_tables_match_the_wgsl() {
    let bad: Vec<String> = ALL.iter().flat_map(|s| contract_mismatches(s)).collect();
    assert!(
        bad.is_empty(),
        "the host's shader tables disagree with the WGSL:\n  {}",
        bad.join("\n  ")
    );
}

#[test]
fn the_contract_check_catches_a_wrong_table() {
    // The first shader with a read-only binding, given one flag flipped and one field added.
    let good: &Shader = ALL.iter().find(|s| s.read_only.contains(&true)).unwrap();
    assert!(contract_mismatches(good).is_empty());
    let mut flags = good.read_only.to_vec();
    let at = flags.iter().position(|&ro| ro).unwrap();
    flags[at] = false;
    let mut fields: Vec<Field> = good.params.fields.iter().map(|f| Field { ..*f }).collect();
    fields.push(Field {
        name: "extra",
        offset: good.params.size,
        ty: "u32",
    });
    let wrong = Shader {
        read_only: Box::leak(flags.into_boxed_slice()),
        params: Box::leak(Box::new(Layout {
            size: good.params.size + 4,
            fields: Box::leak(fields.into_boxed_slice()),
        })),
        overrides: &[],
        ..*good
    };
    let bad = contract_mismatches(&wrong).join("\n");
    assert!(bad.contains(&format!("binding {} ", at + 1)), "{bad}");
    assert!(
        bad.contains("bytes on the host") && bad.contains("extra"),
        "{bad}"
    );
    // (Unless the shader has none, dropping its overrides is caught too.)
    assert_eq!(
        bad.contains("overrides"),
        !good.overrides.is_empty(),
        "{bad}"
    );
}
