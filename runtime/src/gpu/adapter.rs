//! Which adapters cappa uses, and finding them once, lazily and quietly.
//!
//! **Backends.** By default cappa looks for adapters on wgpu's primary backends: Vulkan, Metal,
//! DX12 and the browser's WebGPU. OpenGL (GLES/EGL/WebGL) is used only when asked for —
//! [`GpuOptions::backends`](super::GpuOptions::backends), `CAPPA_GPU_BACKENDS=gl` (a comma list
//! of `vulkan`, `metal`, `dx12`, `gl`, `webgpu`, `primary`, `all`), or wgpu's own `WGPU_BACKEND`
//! — because its compute support is limited and Mesa's GL adapter proved unreliable under load
//! (a deadlock in its context lock).
//!
//! **Probing.** Natively the adapters of a set of backends are enumerated once per process and
//! kept; later devices are opened on them without enumerating again, and a machine without a
//! GPU pays for the look once. On Linux without a usable `XDG_RUNTIME_DIR` (headless servers,
//! containers) Mesa's Vulkan drivers print "XDG_RUNTIME_DIR is invalid" while they start; cappa
//! keeps that out of the host's stderr by pointing file descriptor 2 at `/dev/null` for the
//! duration of the look (and of opening a device).

use std::format;
use std::string::String;
use std::vec::Vec;

use crate::error::{Error, Result};

/// The backends of a comma list: `vulkan` (`vk`), `metal`, `dx12` (`d3d12`), `gl` (`gles`,
/// `opengl`, `webgl`), `webgpu` (`browser`), `primary` (Vulkan, Metal, DX12, WebGPU), `all`.
pub fn parse_backends(list: &str) -> Result<wgpu::Backends> {
    let mut b = wgpu::Backends::empty();
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        b |= match name.to_ascii_lowercase().as_str() {
            "vulkan" | "vk" => wgpu::Backends::VULKAN,
            "metal" | "mtl" => wgpu::Backends::METAL,
            "dx12" | "d3d12" => wgpu::Backends::DX12,
            "gl" | "gles" | "opengl" | "webgl" => wgpu::Backends::GL,
            "webgpu" | "browser" => wgpu::Backends::BROWSER_WEBGPU,
            "primary" => wgpu::Backends::PRIMARY,
            "all" => wgpu::Backends::all(),
            other => {
                return Err(Error::InvalidInput(format!(
                "unknown GPU backend `{other}` (vulkan, metal, dx12, gl, webgpu, primary or all)"
            )))
            }
        };
    }
    if b.is_empty() {
        return Err(Error::InvalidInput(format!(
            "no GPU backend in `{list}` (vulkan, metal, dx12, gl, webgpu, primary or all)"
        )));
    }
    Ok(b)
}

/// The backends to look on: `requested`, else `CAPPA_GPU_BACKENDS`, else `WGPU_BACKEND`, else
/// [`wgpu::Backends::PRIMARY`] (no GL).
pub fn backends(requested: Option<wgpu::Backends>) -> Result<wgpu::Backends> {
    if let Some(b) = requested {
        return Ok(b);
    }
    match std::env::var("CAPPA_GPU_BACKENDS") {
        Ok(list) if !list.trim().is_empty() => {
            return parse_backends(&list).map_err(|e| match e {
                Error::InvalidInput(m) => Error::InvalidInput(format!("CAPPA_GPU_BACKENDS: {m}")),
                other => other,
            })
        }
        _ => {}
    }
    Ok(wgpu::Backends::from_env().unwrap_or(wgpu::Backends::PRIMARY))
}

/// How much an adapter is preferred: discrete GPUs first, software adapters last.
#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
pub(crate) fn rank(info: &wgpu::AdapterInfo) -> u8 {
    match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

/// Whether an adapter is a software implementation (lavapipe, SwiftShader, WARP, a browser's
/// fallback adapter).
pub(crate) fn is_software(info: &wgpu::AdapterInfo) -> bool {
    info.device_type == wgpu::DeviceType::Cpu
}

fn instance(backends: wgpu::Backends) -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    desc.backends = backends;
    wgpu::Instance::new(desc)
}

/// The best adapter on `backends` (hardware before software), or `None` with `hardware_only`
/// when there is only a software one. Natively the adapters are enumerated once per set of
/// backends and remembered.
pub(crate) async fn pick(
    backends: wgpu::Backends,
    hardware_only: bool,
) -> Result<Option<wgpu::Adapter>> {
    #[cfg(not(target_arch = "wasm32"))]
    let best = probe(backends)
        .iter()
        .filter(|a| !hardware_only || !is_software(&a.get_info()))
        .min_by_key(|a| rank(&a.get_info()))
        .cloned();
    #[cfg(target_arch = "wasm32")]
    let best = {
        // A browser offers one adapter, through requestAdapter (it has no enumeration).
        instance(backends)
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                force_fallback_adapter: false,
                compatible_surface: None,
                apply_limit_buckets: false,
            })
            .await
            .ok()
            .filter(|a| !hardware_only || !is_software(&a.get_info()))
    };
    Ok(best)
}

/// What the best adapter on the backends `requested` allows is (`None` where there is none),
/// without opening it: to say why [`DeviceKind::Auto`](crate::DeviceKind::Auto) chose the CPU.
pub async fn best_adapter_info(
    requested: Option<wgpu::Backends>,
) -> Result<Option<wgpu::AdapterInfo>> {
    let backends = backends(requested)?;
    Ok(pick(backends, false).await?.map(|a| a.get_info()))
}

/// A description of `backends` for messages: `Vulkan, Metal, DX12, WebGPU`.
pub(crate) fn describe(backends: wgpu::Backends) -> String {
    let names: Vec<&str> = [
        (wgpu::Backends::VULKAN, "Vulkan"),
        (wgpu::Backends::METAL, "Metal"),
        (wgpu::Backends::DX12, "DX12"),
        (wgpu::Backends::GL, "GL"),
        (wgpu::Backends::BROWSER_WEBGPU, "WebGPU"),
    ]
    .iter()
    .filter(|(b, _)| backends.contains(*b))
    .map(|(_, n)| *n)
    .collect();
    names.join(", ")
}

/// Why no adapter was found, for errors.
pub(crate) fn none_found(backends: wgpu::Backends) -> Error {
    let gl = if backends.contains(wgpu::Backends::GL) {
        ""
    } else {
        " (OpenGL is not used unless asked for: CAPPA_GPU_BACKENDS=gl)"
    };
    Error::Backend(format!(
        "no GPU adapter on {}{gl}",
        describe(backends).as_str()
    ))
}

/// Every adapter on `backends`, enumerated once per process (quietly).
#[cfg(not(target_arch = "wasm32"))]
fn probe(backends: wgpu::Backends) -> std::sync::Arc<Vec<wgpu::Adapter>> {
    use std::sync::{Arc, Mutex};
    type Probes = Vec<(wgpu::Backends, Arc<Vec<wgpu::Adapter>>)>;
    static PROBES: Mutex<Probes> = Mutex::new(Vec::new());
    // Held while probing, so that threads opening devices at once look only once.
    let mut probes = PROBES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, found)) = probes.iter().find(|(b, _)| *b == backends) {
        return found.clone();
    }
    let found = Arc::new(quietly(|| {
        pollster::block_on(instance(backends).enumerate_adapters(backends))
    }));
    probes.push((backends, found.clone()));
    found
}

/// Runs `f` with file descriptor 2 pointed at `/dev/null` when Mesa's drivers would print
/// their complaint about `XDG_RUNTIME_DIR` (Linux, variable unset or not a folder); otherwise
/// simply runs it.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn quietly<T>(f: impl FnOnce() -> T) -> T {
    #[cfg(target_os = "linux")]
    {
        let runtime_dir_ok =
            std::env::var_os("XDG_RUNTIME_DIR").is_some_and(|d| std::path::Path::new(&d).is_dir());
        if !runtime_dir_ok {
            let _silence = Silence::new();
            return f();
        }
    }
    f()
}

/// File descriptor 2 pointed at `/dev/null` until dropped. Threads share one redirection:
/// the first to silence saves the real descriptor, the last to finish restores it (two
/// independent redirections could restore each other's `/dev/null`).
#[cfg(target_os = "linux")]
struct Silence;

/// How many [`Silence`]s are alive, and the real stderr while any is.
#[cfg(target_os = "linux")]
static SILENCED: std::sync::Mutex<(usize, Option<libc::c_int>)> = std::sync::Mutex::new((0, None));

#[cfg(target_os = "linux")]
impl Silence {
    fn new() -> Self {
        use std::os::fd::AsRawFd;
        let mut state = SILENCED.lock().unwrap_or_else(|e| e.into_inner());
        if state.0 == 0 {
            if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
                // SAFETY: dup and dup2 on descriptors this process owns; on failure fd 2 stays
                // as it was.
                unsafe {
                    let saved = libc::dup(2);
                    if saved >= 0 {
                        if libc::dup2(null.as_raw_fd(), 2) >= 0 {
                            state.1 = Some(saved);
                        } else {
                            libc::close(saved);
                        }
                    }
                }
            }
        }
        state.0 += 1;
        Silence
    }
}

#[cfg(target_os = "linux")]
impl Drop for Silence {
    fn drop(&mut self) {
        let mut state = SILENCED.lock().unwrap_or_else(|e| e.into_inner());
        state.0 -= 1;
        if state.0 == 0 {
            if let Some(saved) = state.1.take() {
                // SAFETY: `saved` is the descriptor dup'ed by the first Silence, still open.
                unsafe {
                    libc::dup2(saved, 2);
                    libc::close(saved);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    #[test]
    fn backend_lists_parse_and_unknown_names_are_errors() {
        assert_eq!(
            parse_backends("vulkan, gl").unwrap(),
            wgpu::Backends::VULKAN | wgpu::Backends::GL
        );
        assert_eq!(parse_backends("primary").unwrap(), wgpu::Backends::PRIMARY);
        assert!(!wgpu::Backends::PRIMARY.contains(wgpu::Backends::GL));
        let e = parse_backends("vulkan,opengles3").unwrap_err().to_string();
        assert!(e.contains("opengles3"), "{e}");
        assert!(parse_backends(" , ").is_err());
        assert_eq!(
            backends(Some(wgpu::Backends::METAL)).unwrap(),
            wgpu::Backends::METAL
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn threads_silencing_at_once_leave_stderr_as_it_was() {
        use std::os::fd::AsRawFd;
        let before = std::fs::read_link("/proc/self/fd/2").ok();
        let threads: std::vec::Vec<_> = (0..8)
            .map(|i| {
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        let _s = Silence::new();
                        std::thread::sleep(std::time::Duration::from_micros(10 * i));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(std::fs::read_link("/proc/self/fd/2").ok(), before);
        assert!(std::io::stderr().as_raw_fd() == 2);
    }

    #[test]
    fn hardware_adapters_rank_before_software_ones() {
        let info = |device_type| wgpu::AdapterInfo::new(device_type, wgpu::Backend::Vulkan);
        assert!(rank(&info(wgpu::DeviceType::DiscreteGpu)) < rank(&info(wgpu::DeviceType::Cpu)));
        assert!(is_software(&info(wgpu::DeviceType::Cpu)));
        assert!(!is_software(&info(wgpu::DeviceType::IntegratedGpu)));
    }
}
