//! Training data: `(image, caption)` pairs from a JSONL file (`{"image": path, "caption": text}`
//! per line, paths relative to the file) or a folder of images each with a same-named `.txt`
//! caption; decoded (PNG, JPEG), resized and mapped to [-1, 1] exactly as the runtime's
//! `cappa::image::preprocess` (the reference pipeline), and tokenized with the model's
//! tokenizer as the reference (`Tokenizer::encode_caption`: EOS kept on truncation, PAD).
//!
//! A [`Loader`] decodes and batches on background threads, ahead of the compute. Examples come
//! in a seeded order — epoch `e` is a permutation drawn from `(seed, e)` — indexed by a global
//! cursor, so a run resumed from a checkpoint's cursor sees exactly the batches it would have.
//! A bad line, a missing or undecodable image, or an empty caption is reported with its
//! path (and line) and skipped, never a crash.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

use cappa::image::{preprocess, PixelLayout};
use cappa::{Error, HostTensor, Result, Tokenizer, Tokens};

use crate::mixing::step_rng;
use crate::shapes::{Scene, ShapesWorld, Split};

/// Where an example's image comes from.
#[derive(Debug, Clone)]
pub enum ImageSource {
    /// An image file (PNG or JPEG).
    File(PathBuf),
    /// Pixels already preprocessed: `[size, size, 3]` in [-1, 1] (generated data).
    Pixels(HostTensor),
    /// A shapes-world scene, rendered on the loader's threads.
    Scene {
        /// The scene.
        scene: Box<Scene>,
        /// Rendered at `pixels × pixels`, then resized to the model's size.
        pixels: usize,
    },
}

/// One `(image, caption)` pair.
#[derive(Debug, Clone)]
pub struct Example {
    /// The image.
    pub image: ImageSource,
    /// The caption text.
    pub caption: String,
    /// Where it came from (`file:line` or a path), for messages.
    pub origin: String,
}

/// A list of examples, and what was skipped while reading it.
#[derive(Debug, Clone, Default)]
pub struct Dataset {
    /// The usable examples, in file order.
    pub examples: Vec<Example>,
    /// One message per skipped line or file.
    pub warnings: Vec<String>,
}

fn io(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Io(format!("{}: {e}", path.display()))
}

/// One JSONL line.
#[derive(serde::Deserialize)]
struct Line {
    image: String,
    caption: String,
}

/// A file that marks a folder as a check set, which [`Dataset::open`] refuses to read.
pub const NOT_FOR_TRAINING: &str = "NOT-FOR-TRAINING";

const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg"];

impl Dataset {
    /// A JSONL file or a folder (see the module docs). A folder marked [`NOT_FOR_TRAINING`]
    /// (a check set), or a file in one, is refused.
    pub fn open(path: &Path) -> Result<Self> {
        let folder = if path.is_dir() {
            Some(path)
        } else {
            path.parent()
        };
        if let Some(marker) = folder
            .map(|f| f.join(NOT_FOR_TRAINING))
            .filter(|m| m.exists())
        {
            return Err(Error::Config(format!(
                "{}: a check set ({}), never training or validation data; measure a model on it \
                 with `cappa-train eval --checkset`",
                path.display(),
                marker.display()
            )));
        }
        if path.is_dir() {
            Self::from_folder(path)
        } else {
            Self::from_jsonl(path)
        }
    }

    /// `{"image": path, "caption": text}` per line; blank lines are ignored, malformed ones
    /// reported and skipped.
    pub fn from_jsonl(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| io(path, e))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut ds = Dataset::default();
        for (i, line) in text.lines().enumerate() {
            let origin = format!("{}:{}", path.display(), i + 1);
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Line>(line) {
                Ok(l) if l.caption.trim().is_empty() => ds
                    .warnings
                    .push(format!("{origin}: empty caption, skipped")),
                Ok(l) => ds.examples.push(Example {
                    image: ImageSource::File(base.join(l.image)),
                    caption: l.caption,
                    origin,
                }),
                Err(e) => ds.warnings.push(format!("{origin}: {e}, skipped")),
            }
        }
        Ok(ds)
    }

    /// Every PNG/JPEG image of `dir` (sorted by name) with the caption in the `.txt` file of
    /// the same name; images without one are reported and skipped.
    pub fn from_folder(dir: &Path) -> Result<Self> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| io(dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
            })
            .collect();
        files.sort();
        let mut ds = Dataset::default();
        for image in files {
            let txt = image.with_extension("txt");
            match std::fs::read_to_string(&txt) {
                Ok(c) if c.trim().is_empty() => ds
                    .warnings
                    .push(format!("{}: empty caption, skipped", txt.display())),
                Ok(c) => ds.examples.push(Example {
                    caption: c.trim().to_string(),
                    origin: image.display().to_string(),
                    image: ImageSource::File(image),
                }),
                Err(e) => ds
                    .warnings
                    .push(format!("{}: {e}, image skipped", txt.display())),
            }
        }
        Ok(ds)
    }

    /// The first `n` scenes of a split of the shapes world (see [`crate::shapes`]), for a
    /// model of `image_size` pixels. Each scene is drawn at its own [`Scene::pixels`] — most at
    /// the model's size, the rest at 0.75 to 3 times it — and resized to the model's size as a
    /// user's picture is, so a model trained on it captions pictures of any size.
    pub fn shapes(world: &ShapesWorld, split: Split, n: usize, image_size: usize) -> Self {
        let examples = (0..n as u64)
            .map(|i| {
                let scene = world.scene(split, i);
                Example {
                    caption: scene.caption(),
                    image: ImageSource::Scene {
                        pixels: scene.pixels(image_size),
                        scene: Box::new(scene),
                    },
                    origin: format!("shapes {split:?} #{i}"),
                }
            })
            .collect();
        Dataset {
            examples,
            warnings: Vec::new(),
        }
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.examples.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.examples.is_empty()
    }
}

/// Reads an image file (PNG or JPEG) and preprocesses it as the runtime does: resized to
/// `size × size`, values in [-1, 1].
pub fn load_image(path: &Path, size: usize) -> Result<HostTensor> {
    let bytes = std::fs::read(path).map_err(|e| io(path, e))?;
    let img = image::load_from_memory(&bytes)
        .map_err(|e| Error::InvalidInput(format!("{}: {e}", path.display())))?
        .to_rgb8();
    let (w, h) = (img.width() as usize, img.height() as usize);
    preprocess(img.as_raw(), PixelLayout::rgb(w, h), size)
        .map_err(|e| Error::InvalidInput(format!("{}: {e}", path.display())))
}

/// How examples become model inputs.
#[derive(Debug, Clone)]
pub struct Prep {
    /// The model's square image size.
    pub image_size: usize,
    /// Caption length in tokens.
    pub max_len: usize,
    /// End-of-sequence id.
    pub eos_id: u32,
    /// Padding id.
    pub pad_id: u32,
    /// The model's tokenizer.
    pub tokenizer: Arc<Tokenizer>,
}

impl Prep {
    /// The image `[size, size, 3]` in [-1, 1] and the caption ids of one example.
    pub fn prepare(&self, ex: &Example) -> Result<(HostTensor, Vec<u32>)> {
        let image = match &ex.image {
            ImageSource::Pixels(t) => {
                if t.shape() != [self.image_size, self.image_size, 3] {
                    return Err(Error::InvalidInput(format!(
                        "{}: image {:?} is not [{s}, {s}, 3]",
                        ex.origin,
                        t.shape(),
                        s = self.image_size
                    )));
                }
                t.clone()
            }
            ImageSource::Scene { scene, pixels } => {
                if *pixels == scene.pixels(self.image_size) {
                    scene.image(self.image_size)?
                } else {
                    let rgb = scene.render(*pixels);
                    preprocess(&rgb, PixelLayout::rgb(*pixels, *pixels), self.image_size)?
                }
            }
            ImageSource::File(path) => load_image(path, self.image_size)?,
        };
        let ids =
            self.tokenizer
                .encode_caption(&ex.caption, self.max_len, self.eos_id, self.pad_id);
        Ok((image, ids))
    }
}

/// A batch of model inputs.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Images `[B, size, size, 3]` in [-1, 1].
    pub images: HostTensor,
    /// Caption targets `[B, max_len]`.
    pub targets: Tokens,
    /// The cursor after this batch (where a resumed run continues).
    pub next: u64,
    /// Examples skipped while making it, one message each.
    pub warnings: Vec<String>,
}

/// How a [`Loader`] walks a dataset.
#[derive(Debug, Clone)]
pub struct LoaderOptions {
    /// Examples per batch.
    pub batch_size: usize,
    /// Seed of the epoch permutations.
    pub seed: u64,
    /// Shuffle each epoch (training) or keep file order (validation).
    pub shuffle: bool,
    /// The cursor to start from (0, or a checkpoint's).
    pub start: u64,
    /// Stop after one pass (validation); the last batch may be short.
    pub one_pass: bool,
    /// Decoding threads.
    pub workers: usize,
    /// Batches prepared ahead.
    pub prefetch: usize,
}

/// Batches made on background threads (see the module docs).
pub struct Loader {
    rx: Receiver<Result<Batch>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// Index into the dataset of cursor position `g`.
fn example_index(
    g: u64,
    n: usize,
    seed: u64,
    shuffle: bool,
    perm: &mut (u64, Vec<usize>),
) -> usize {
    let (epoch, i) = (g / n as u64, (g % n as u64) as usize);
    if !shuffle {
        return i;
    }
    if perm.1.len() != n || perm.0 != epoch {
        // Fisher–Yates with the epoch's own stream.
        let mut rng = step_rng(seed, epoch, 2);
        let mut p: Vec<usize> = (0..n).collect();
        for k in (1..n).rev() {
            let j = (rng.next_u64() % (k as u64 + 1)) as usize;
            p.swap(k, j);
        }
        *perm = (epoch, p);
    }
    perm.1[i]
}

impl Loader {
    /// Starts the background threads.
    pub fn new(dataset: Arc<Dataset>, prep: Prep, opts: LoaderOptions) -> Result<Self> {
        if dataset.is_empty() {
            return Err(Error::InvalidInput(
                "the dataset has no usable example".into(),
            ));
        }
        if opts.batch_size == 0 {
            return Err(Error::InvalidInput("batch_size must be positive".into()));
        }
        let (tx, rx) = sync_channel(opts.prefetch.max(1));
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || {
            let n = dataset.len();
            let end = opts.one_pass.then_some(n as u64);
            let mut perm = (u64::MAX, Vec::new());
            let mut g = opts.start;
            let mut failures_in_a_row = 0usize;
            while !stop2.load(Ordering::Relaxed) {
                let mut images = Vec::new();
                let mut ids = Vec::new();
                let mut warnings = Vec::new();
                let mut count = 0;
                while count < opts.batch_size && end.is_none_or(|e| g < e) {
                    let want =
                        (opts.batch_size - count).min(end.map_or(usize::MAX, |e| (e - g) as usize));
                    let picks: Vec<usize> = (0..want as u64)
                        .map(|k| example_index(g + k, n, opts.seed, opts.shuffle, &mut perm))
                        .collect();
                    g += want as u64;
                    for r in prepare_all(&dataset, &prep, &picks, opts.workers) {
                        match r {
                            Ok((img, caption)) => {
                                images.extend_from_slice(img.data());
                                ids.extend(caption);
                                count += 1;
                                failures_in_a_row = 0;
                            }
                            Err(e) => {
                                warnings.push(format!("{e}; skipped"));
                                failures_in_a_row += 1;
                            }
                        }
                    }
                    if failures_in_a_row > n {
                        let _ = tx.send(Err(Error::InvalidInput(format!(
                            "no example of the dataset could be read ({})",
                            warnings.last().map_or("", String::as_str)
                        ))));
                        return;
                    }
                }
                if count == 0 {
                    return; // one pass done
                }
                let s = prep.image_size;
                let batch = HostTensor::new(&[count, s, s, 3], images).and_then(|images| {
                    Ok(Batch {
                        images,
                        targets: Tokens::new(ids, count, prep.max_len)?,
                        next: g,
                        warnings,
                    })
                });
                if tx.send(batch).is_err() {
                    return;
                }
            }
        });
        Ok(Loader {
            rx,
            stop,
            thread: Some(thread),
        })
    }

    /// The next batch; `None` after the last one of a one-pass loader.
    pub fn next_batch(&mut self) -> Option<Result<Batch>> {
        self.rx.recv().ok()
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            // Keep draining, so a producer blocked on a full channel sees the stop flag.
            while !t.is_finished() {
                let _ = self.rx.recv_timeout(std::time::Duration::from_millis(5));
            }
            let _ = t.join();
        }
    }
}

/// Prepares the examples `picks` on up to `workers` threads, results in order.
fn prepare_all(
    ds: &Dataset,
    prep: &Prep,
    picks: &[usize],
    workers: usize,
) -> Vec<Result<(HostTensor, Vec<u32>)>> {
    let workers = workers.clamp(1, picks.len().max(1));
    if workers == 1 {
        return picks
            .iter()
            .map(|&i| prep.prepare(&ds.examples[i]))
            .collect();
    }
    let per = picks.len().div_ceil(workers);
    std::thread::scope(|s| {
        let handles: Vec<_> = picks
            .chunks(per)
            .map(|chunk| {
                s.spawn(move || {
                    chunk
                        .iter()
                        .map(|&i| prep.prepare(&ds.examples[i]))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| {
                h.join().unwrap_or_else(|_| {
                    vec![Err(Error::Backend("a decoding thread panicked".into()))]
                })
            })
            .collect()
    })
}
