//! The one device policy (`cappa::device`), and which GPU backends are used (issue 18: with no
//! Vulkan driver wgpu picked Mesa's GL adapter, which deadlocked under load).

use cappa::{Device, DeviceKind, DeviceOptions};

#[test]
fn device_kinds_parse_and_print() {
    for (s, k) in [
        ("auto", DeviceKind::Auto),
        ("CPU", DeviceKind::Cpu),
        (" gpu ", DeviceKind::Gpu),
    ] {
        assert_eq!(s.parse::<DeviceKind>().unwrap(), k);
        assert_eq!(k.to_string().parse::<DeviceKind>().unwrap(), k);
    }
    let e = "vulkan".parse::<DeviceKind>().unwrap_err().to_string();
    assert!(
        e.contains("vulkan") && e.contains("cpu, gpu or auto"),
        "{e}"
    );
    assert_eq!(DeviceKind::default(), DeviceKind::Auto);
    assert_eq!(DeviceKind::Cpu.resolve().unwrap(), DeviceKind::Cpu);
}

#[test]
fn the_cpu_is_the_cpu() {
    let d = Device::open(DeviceKind::Cpu, &DeviceOptions::default()).unwrap();
    assert!(!d.is_gpu());
}

#[cfg(feature = "gpu")]
#[test]
fn auto_never_takes_a_software_adapter() {
    if std::env::var_os("CAPPA_DEVICE").is_some() {
        eprintln!("skipping: CAPPA_DEVICE is set, so auto follows it");
        return;
    }
    match Device::open(DeviceKind::Auto, &DeviceOptions::default()).unwrap() {
        Device::Gpu(g) => assert!(!g.is_cpu_adapter(), "{}", g.adapter_info().name),
        Device::Cpu(_) => {}
    }
}

#[cfg(feature = "gpu")]
#[test]
fn gl_is_used_only_when_asked_for() {
    use cappa::gpu::adapter::{backends, parse_backends};
    use cappa::gpu::wgpu;
    if std::env::var_os("CAPPA_GPU_BACKENDS").is_none()
        && std::env::var_os("WGPU_BACKEND").is_none()
    {
        let b = backends(None).unwrap();
        assert!(!b.contains(wgpu::Backends::GL), "{b:?}");
        assert!(b.contains(wgpu::Backends::VULKAN) && b.contains(wgpu::Backends::METAL));
        // Whatever adapter the tests run on, it is not GL (where only GL exists, the GPU tests
        // skip, saying why).
        if let Some(g) = cappa_tests::gpu() {
            assert_ne!(g.adapter_info().backend, wgpu::Backend::Gl);
        }
    }
    assert!(parse_backends("gl").unwrap().contains(wgpu::Backends::GL));
    let options = cappa::GpuOptions {
        backends: Some(wgpu::Backends::empty()),
        ..Default::default()
    };
    let e = cappa::GpuBackend::with_options(options)
        .unwrap_err()
        .to_string();
    assert!(e.contains("no GPU adapter"), "{e}");
}
