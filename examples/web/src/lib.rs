//! # cappa in a web page
//!
//! The runtime compiled to WebAssembly, with a small JavaScript-facing API for the demo page in
//! `www/` (built by `examples/web/build.sh`). It runs on WebGPU where the browser offers an
//! adapter (wgpu's `webgpu` backend, the same WGSL kernels as natively) and on cappa's CPU backend
//! otherwise, and says which.
//!
//! A page cannot block, so everything that reads from the GPU is `async` here: the model is
//! opened with [`cappa::Device::gpu_async`] and captions and label probabilities come from
//! [`cappa::Model::caption_with_async`] and [`cappa::Model::classify_async`], which await each
//! readback instead of polling the device. Images are decoded with the `image` crate, as the
//! `cappa` CLI does, so the page sees exactly the CLI's pixels and gives the CLI's answers.
//!
//! ```js
//! import init, { Demo } from "./pkg/cappa_web.js";
//! await init();
//! const demo = await Demo.load(modelBytes, "auto"); // or "gpu", "cpu"
//! demo.setImage(pngBytes);
//! const parallel = await demo.caption("parallel");   // { text, tokens, logProb, eos }
//! const probs = await demo.classify(["a red circle", "a blue square"]); // Float32Array
//! ```

use std::cell::RefCell;
use std::rc::Rc;

use cappa::{Backend, Decode, DecodeOptions, Device, DeviceKind, DeviceOptions, Image, Model};
use js_sys::Promise;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

/// Panics show up in the browser console (with the message) rather than as a bare
/// "unreachable" trap.
#[wasm_bindgen(start)]
fn start() {
    std::panic::set_hook(Box::new(|info| {
        web_sys::console::error_1(&JsValue::from_str(&info.to_string()));
    }));
}

fn js_error(e: impl std::fmt::Display) -> JsValue {
    JsError::new(&e.to_string()).into()
}

/// Which backend [`Demo::load`] opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefer {
    /// A hardware WebGPU adapter if the browser offers one, else the CPU (the runtime's
    /// `DeviceKind::Auto`).
    Auto,
    /// WebGPU on whatever adapter the browser offers (software ones included), or an error.
    Gpu,
    /// The CPU backend.
    Cpu,
}

impl Prefer {
    /// `auto`, `gpu` (also `webgpu`) or `cpu`.
    pub fn parse(name: &str) -> Result<Self, String> {
        match name {
            "auto" | "" => Ok(Prefer::Auto),
            "gpu" | "webgpu" => Ok(Prefer::Gpu),
            "cpu" => Ok(Prefer::Cpu),
            other => Err(format!("unknown backend `{other}` (auto, gpu or cpu)")),
        }
    }
}

/// Why `auto` chose the CPU: no adapter at all, or only a software one.
async fn why_not_gpu() -> String {
    match cappa::gpu::adapter::best_adapter_info(None).await {
        Ok(Some(info)) => format!(
            "the browser's WebGPU adapter ({}) is a software one, slower than the CPU backend; \
             ?backend=gpu uses it anyway",
            match info.name.trim() {
                "" => "unnamed",
                n => n,
            }
        ),
        Ok(None) => "the browser offered no WebGPU adapter".to_string(),
        Err(e) => e.to_string(),
    }
}

/// The decoding a caption uses: `parallel` or `greedy` (the two the page shows; `beam` also
/// works, with 4 beams).
pub fn decode_mode(name: &str) -> Result<Decode, String> {
    match name {
        "parallel" => Ok(Decode::Parallel),
        "greedy" => Ok(Decode::Greedy),
        "beam" => Ok(Decode::Beam(cappa::Beam::default())),
        other => Err(format!(
            "unknown decoding `{other}` (parallel, greedy or beam)"
        )),
    }
}

/// Decodes an image file (PNG, JPEG, WebP, PPM) to tightly packed RGB8, as the `cappa` CLI does.
pub fn decode_image(bytes: &[u8]) -> Result<(Vec<u8>, usize, usize), String> {
    let img = image::load_from_memory(bytes).map_err(|e| format!("cannot read image: {e}"))?;
    let rgb = img.to_rgb8();
    let (w, h) = (rgb.width() as usize, rgb.height() as usize);
    Ok((rgb.into_raw(), w, h))
}

struct Inner {
    model: Model<Device>,
    image: RefCell<Option<Image>>,
}

/// A model loaded in the page, on WebGPU or the CPU, and the image it works on.
#[wasm_bindgen]
pub struct Demo {
    inner: Rc<Inner>,
    backend: String,
    webgpu: bool,
    gpu_error: Option<String>,
}

/// A caption as the page shows it.
#[wasm_bindgen(getter_with_clone)]
pub struct CaptionResult {
    /// The caption.
    pub text: String,
    /// Its token ids (no BOS, no EOS).
    pub tokens: Vec<u32>,
    /// The model's log-probability of the tokens (EOS included when the caption has one).
    #[wasm_bindgen(js_name = logProb)]
    pub log_prob: f32,
    /// Whether the caption ended with EOS.
    pub eos: bool,
}

#[wasm_bindgen]
impl Demo {
    /// Opens the backend `backend` names (`auto`, `gpu` or `cpu`) and loads a single-file model
    /// (with its tokenizer) from its bytes. `auto` is the runtime's policy: a hardware WebGPU
    /// adapter if the browser offers one, else the CPU backend ([`Demo::gpu_error`] says why:
    /// no adapter, or only a software one).
    pub async fn load(bytes: Vec<u8>, backend: String) -> Result<Demo, JsValue> {
        let prefer = Prefer::parse(&backend).map_err(js_error)?;
        let options = DeviceOptions::default();
        // The runtime's one policy (cappa::device): auto takes a hardware adapter, never a
        // software one (SwiftShader is far slower than the CPU backend in wasm).
        let (device, gpu_error) = match prefer {
            Prefer::Cpu => (Device::cpu(), None),
            Prefer::Gpu => (
                Device::open_async(DeviceKind::Gpu, &options)
                    .await
                    .map_err(js_error)?,
                None,
            ),
            Prefer::Auto => match Device::open_async(DeviceKind::Auto, &options).await {
                Ok(d @ Device::Gpu(_)) => (d, None),
                Ok(d) => (d, Some(why_not_gpu().await)),
                Err(e) => (Device::cpu(), Some(e.to_string())),
            },
        };
        let (backend, webgpu) = match &device {
            Device::Gpu(g) => {
                let info = g.adapter_info();
                let name = match info.name.trim() {
                    "" => "unnamed adapter".to_string(),
                    n => n.to_string(),
                };
                let kind = if g.is_cpu_adapter() {
                    ", software fallback"
                } else {
                    ""
                };
                (format!("WebGPU ({name}{kind})"), true)
            }
            Device::Cpu(_) => ("CPU (wasm)".to_string(), false),
        };
        let model = Model::from_bytes(&bytes, device).map_err(js_error)?;
        if model.tokenizer().is_none() {
            return Err(js_error(
                "the model file has no tokenizer, so it cannot write captions",
            ));
        }
        Ok(Demo {
            inner: Rc::new(Inner {
                model,
                image: RefCell::new(None),
            }),
            backend,
            webgpu,
            gpu_error,
        })
    }

    /// The backend in use: `WebGPU (<adapter>)` or `CPU (wasm)`.
    #[wasm_bindgen(getter)]
    pub fn backend(&self) -> String {
        self.backend.clone()
    }

    /// Whether the model runs on WebGPU.
    #[wasm_bindgen(getter)]
    pub fn webgpu(&self) -> bool {
        self.webgpu
    }

    /// Why WebGPU was not used, when `auto` fell back to the CPU.
    #[wasm_bindgen(getter, js_name = gpuError)]
    pub fn gpu_error(&self) -> Option<String> {
        self.gpu_error.clone()
    }

    /// The side of the model's square input, in pixels.
    #[wasm_bindgen(getter, js_name = imageSize)]
    pub fn image_size(&self) -> usize {
        self.inner.model.config().image_size
    }

    /// The backend's own description (wgpu adapter or CPU backend).
    #[wasm_bindgen(getter, js_name = deviceName)]
    pub fn device_name(&self) -> String {
        self.inner.model.backend().name()
    }

    /// Decodes an image file (PNG, JPEG, WebP, PPM) and prepares it for the model; returns its
    /// `[width, height]`. Captions and labels then concern this image.
    #[wasm_bindgen(js_name = setImage)]
    pub fn set_image(&self, bytes: &[u8]) -> Result<Vec<u32>, JsValue> {
        let (pixels, w, h) = decode_image(bytes).map_err(js_error)?;
        let image = self
            .inner
            .model
            .preprocess_rgb8(&pixels, w, h)
            .map_err(js_error)?;
        *self.inner.image.borrow_mut() = Some(image);
        Ok(vec![w as u32, h as u32])
    }

    /// The caption of the current image by `mode` (`parallel` or `greedy`); resolves to a
    /// [`CaptionResult`].
    pub fn caption(&self, mode: String) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let decode = decode_mode(&mode).map_err(js_error)?;
            let image = inner.current()?;
            let mut captions = inner
                .model
                .caption_with_async(&[image], &decode, &DecodeOptions::default(), None)
                .await
                .map_err(js_error)?;
            let best = captions.swap_remove(0).swap_remove(0);
            Ok(CaptionResult {
                text: best.text,
                tokens: best.tokens,
                log_prob: best.log_prob,
                eos: best.eos,
            }
            .into())
        })
    }

    /// Zero-shot probabilities of `labels` for the current image; resolves to a `Float32Array`.
    pub fn classify(&self, labels: Vec<String>) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let image = inner.current()?;
            let refs: Vec<&str> = labels.iter().map(String::as_str).collect();
            let probs = inner
                .model
                .classify_async(&image, &refs)
                .await
                .map_err(js_error)?;
            Ok(js_sys::Float32Array::from(probs.as_slice()).into())
        })
    }
}

impl Inner {
    fn current(&self) -> Result<Image, JsValue> {
        self.image
            .borrow()
            .clone()
            .ok_or_else(|| js_error("no image chosen yet"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_and_mode_names() {
        assert_eq!(Prefer::parse("auto"), Ok(Prefer::Auto));
        assert_eq!(Prefer::parse("webgpu"), Ok(Prefer::Gpu));
        assert_eq!(Prefer::parse("cpu"), Ok(Prefer::Cpu));
        assert!(Prefer::parse("tpu").is_err());
        assert_eq!(decode_mode("parallel"), Ok(Decode::Parallel));
        assert_eq!(decode_mode("greedy"), Ok(Decode::Greedy));
        assert!(decode_mode("fast").is_err());
    }

    #[test]
    fn images_decode_as_the_cli_reads_them() {
        let img = image::RgbImage::from_fn(5, 3, |x, y| image::Rgb([x as u8 * 40, y as u8, 7]));
        let mut png = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        let (pixels, w, h) = decode_image(&png).unwrap();
        assert_eq!((w, h), (5, 3));
        assert_eq!(pixels, img.into_raw());
        assert!(decode_image(b"not an image").is_err());
    }
}
