//! `cappa-train`: train a CapPa model from a TOML run file, or write the gradients of a model on
//! given inputs for comparison with another implementation.
//!
//! ```text
//! cappa-train train --config run.toml [--resume] [--device cpu|gpu|auto]
//! cappa-train grads --model PATH --inputs INPUTS.safetensors --mode cap|pa|mixed \
//!                   --out OUT.safetensors [--device cpu|gpu]
//! cappa-train eval --model PATH [--scenes N] [--json]      # on the shapes world
//! cappa-train eval --model PATH --checkset DIR [--json]    # on pictures drawn by another program
//! cappa-train shapes --out DIR [--count N] [--size PX]      # scenes as PNG + captions.jsonl
//! cappa-train plot --out curves.svg LABEL=RUN_DIR...        # training curves
//! cappa-train data-cost [--image-size PX] [--batch N]      # CPU time to make shapes batches
//! ```

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use cappa::safetensors_io::{serialize, DType, OwnedTensor, SafetensorsFile};
use cappa::tokenizer::SpecialIds;
use cappa::weights::InitParams;
use cappa::{
    Backend, Checkpoint, Config, Device, Error, HostTensor, Mode, Model, Result, Tokenizer, Tokens,
    TrainBackend,
};
use cappa_trainer::data::{Dataset, Loader, LoaderOptions, Prep};
use cappa_trainer::eval::{self, Report};
use cappa_trainer::log::{self, RunLog, LOG_FILE};
use cappa_trainer::plot;
use cappa_trainer::shapes::{self, ShapesWorld, Split};
use cappa_trainer::train::{
    run, write_atomic_with, Event, Outcome, ValidationData, CHECKPOINT_FILE,
};
use cappa_trainer::{RunConfig, Trainer};
use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Deserialize;

#[derive(Parser)]
#[command(
    name = "cappa-train",
    version,
    about = "Train CapPa image-captioning models"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train (or continue training) as a TOML run file says.
    Train {
        /// The run file: [model], [tokenizer], [data], [run] (see the README).
        #[arg(long)]
        config: PathBuf,
        /// Continue from the checkpoint in the run's output folder.
        #[arg(long)]
        resume: bool,
        /// Backend; overrides the run file's `device`.
        #[arg(long)]
        device: Option<String>,
    },
    /// Write the loss and the gradient of every parameter on given inputs.
    Grads {
        /// Model file, or a folder with params.safetensors + config.json.
        #[arg(long)]
        model: PathBuf,
        /// `images` [B,H,W,3] f32 in [-1,1], `tokens` [B,L] i32 (and `mixed_is_pa` [B] i32 for
        /// `--mode mixed`).
        #[arg(long)]
        inputs: PathBuf,
        /// Which loss: every caption Cap, every caption Pa, or Pa where `mixed_is_pa` is 1.
        #[arg(long, value_enum)]
        mode: GradMode,
        /// Output: `loss_<mode>` [1] and `grad_<mode>/<param>` per parameter.
        #[arg(long)]
        out: PathBuf,
        /// Label smoothing of the loss.
        #[arg(long, default_value_t = 0.0)]
        label_smoothing: f32,
        /// Backend.
        #[arg(long, default_value = "cpu")]
        device: String,
    },
    /// Evaluate a model on the shapes world's test split: captioning (greedy, beam, parallel),
    /// zero-shot shape and colour, word order, linear probe (10-shot unless `--probe-shots`), and
    /// the words of its captions. With `--checkset`, instead the words of its captions of a check
    /// set's pictures.
    Eval {
        /// Model file trained on the shapes world.
        #[arg(long)]
        model: PathBuf,
        /// A folder of pictures with `captions.jsonl` (as `cappa-train shapes` writes; e.g.
        /// `examples/checkset`): report, greedy and parallel, on one-object pictures the colour,
        /// shape and size words and exact match, on two-object pictures both colours, both
        /// shapes, both objects (colour + shape), both objects and the relation, and exact match.
        #[arg(long)]
        checkset: Option<PathBuf>,
        /// Test scenes of each kind (one object, two objects).
        #[arg(long, default_value_t = 500)]
        scenes: usize,
        /// Seed of the shapes world.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Training scenes per class of the linear probe (1 to 1000; the standard measure is
        /// 10-shot).
        #[arg(long, default_value_t = eval::PROBE_SHOTS)]
        probe_shots: usize,
        /// Backend.
        #[arg(long, default_value = "cpu")]
        device: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Write scenes of the shapes world as PNG files and a `captions.jsonl` (the trainer's
    /// JSONL format).
    Shapes {
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
        /// Number of scenes.
        #[arg(long, default_value_t = 16)]
        count: usize,
        /// Image size in pixels.
        #[arg(long, default_value_t = 144)]
        size: usize,
        /// Which split.
        #[arg(long, value_enum, default_value = "test")]
        split: SplitArg,
        /// Seed of the shapes world.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// The first scene's index in the split.
        #[arg(long, default_value_t = 0)]
        start: u64,
    },
    /// Measure what making training batches of the shapes world costs on one thread: each
    /// example rendered, resized to the model's size and tokenized, as the loader's threads do
    /// (build with --release to measure).
    DataCost {
        /// The model's image size in pixels.
        #[arg(long, default_value_t = 48)]
        image_size: usize,
        /// Examples per batch.
        #[arg(long, default_value_t = 64)]
        batch: usize,
        /// Batches to time.
        #[arg(long, default_value_t = 50)]
        batches: usize,
        /// Seed of the shapes world.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Draw the training curves of runs (their `log.jsonl`) into an SVG file.
    Plot {
        /// Output `.svg` file.
        #[arg(long)]
        out: PathBuf,
        /// Runs as `LABEL=FOLDER` (the run's output folder).
        #[arg(required = true)]
        runs: Vec<String>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum SplitArg {
    Train,
    Validation,
    Test,
    HeldOut,
}

impl From<SplitArg> for Split {
    fn from(s: SplitArg) -> Split {
        match s {
            SplitArg::Train => Split::Train,
            SplitArg::Validation => Split::Validation,
            SplitArg::Test => Split::Test,
            SplitArg::HeldOut => Split::HeldOut,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum GradMode {
    Cap,
    Pa,
    Mixed,
}

/// The TOML run file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RunFile {
    /// `init = "model.safetensors"` to start from a model file, or the config's keys.
    model: toml::Table,
    #[serde(default)]
    tokenizer: Option<TokenizerSection>,
    data: DataSection,
    #[serde(default)]
    run: RunConfig,
    /// Output folder (checkpoint.safetensors, model.safetensors).
    out: PathBuf,
    /// `cpu`, `gpu` or `auto`.
    #[serde(default = "auto")]
    device: String,
}

fn auto() -> String {
    "auto".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenizerSection {
    /// A SentencePiece `.model` file.
    sentencepiece: Option<PathBuf>,
    /// A word list, one word per line (word i has id i).
    words: Option<PathBuf>,
    /// The built-in word list of the procedural shapes data.
    #[serde(default)]
    shapes: bool,
    #[serde(default = "yes")]
    lowercase: bool,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DataSection {
    /// JSONL file or folder of training examples.
    train: Option<PathBuf>,
    /// JSONL file or folder of validation examples.
    valid: Option<PathBuf>,
    /// Instead of files: the first this many scenes of the shapes world's training split (and
    /// `shapes_valid` of its validation split), drawn with `shapes_seed`.
    shapes: Option<usize>,
    shapes_valid: Option<usize>,
    #[serde(default)]
    shapes_seed: u64,
    /// Shapes captions in canonical object order (see `ShapesWorld::canonical_order`).
    #[serde(default = "yes")]
    shapes_canonical: bool,
    /// With shapes data: evaluate every checkpoint on this many test scenes of each kind
    /// (captioning, zero-shot, word order, probe), logged to `log.jsonl`.
    #[serde(default)]
    shapes_eval: usize,
    #[serde(default = "two")]
    workers: usize,
    #[serde(default = "four")]
    prefetch: usize,
}

fn two() -> usize {
    2
}
fn four() -> usize {
    4
}

/// A training step allocates and frees the same large activations every step. By default glibc
/// maps each one fresh and returns it to the kernel when freed, so every step faulted and zeroed
/// its memory again (~10% of the CPU time); keep freed memory in the heap instead.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets two of glibc's allocator parameters; called before any thread.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20); // glibc's largest
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

fn main() -> ExitCode {
    keep_freed_memory();
    match real_main() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("cappa-train: {e}");
            ExitCode::FAILURE
        }
    }
}

fn real_main() -> Result<ExitCode> {
    match Cli::parse().command {
        Command::Train {
            config,
            resume,
            device,
        } => train(&config, resume, device),
        Command::Grads {
            model,
            inputs,
            mode,
            out,
            label_smoothing,
            device,
        } => {
            grads(&model, &inputs, mode, &out, label_smoothing, &device)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Eval {
            model,
            checkset,
            scenes,
            seed,
            probe_shots,
            device,
            json,
        } => {
            let be = open_device(&device)?;
            let bytes = read(&model)?;
            let m = cappa::Model::from_bytes(&bytes, be)
                .map_err(|e| Error::Config(format!("{}: {e}", model.display())))?;
            let tokenizer = m.tokenizer().cloned().ok_or_else(|| {
                Error::Config(format!("{}: the model has no tokenizer", model.display()))
            })?;
            if let Some(dir) = checkset {
                let set = eval::CheckSet::open(&dir, m.config().image_size)?;
                let report = eval::check(&m, &tokenizer, &set)?;
                let title = format!(
                    "{} on the check set {} ({} pictures):",
                    model.display(),
                    dir.display(),
                    set.len()
                );
                print_eval(json, &report, &title, &report.table());
                return Ok(ExitCode::SUCCESS);
            }
            if scenes == 0 {
                return Err(Error::InvalidInput("--scenes must be positive".into()));
            }
            let report =
                eval::report(&m, &tokenizer, &ShapesWorld::new(seed), scenes, probe_shots)?;
            let title = format!(
                "{} on {scenes} + {scenes} test scenes of the shapes world (seed {seed}):",
                model.display()
            );
            print_eval(json, &report, &title, &report.table());
            Ok(ExitCode::SUCCESS)
        }
        Command::Shapes {
            out,
            count,
            size,
            split,
            seed,
            start,
        } => {
            write_scenes(&out, count, size, split.into(), seed, start)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::DataCost {
            image_size,
            batch,
            batches,
            seed,
        } => {
            data_cost(image_size, batch, batches, seed)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Plot { out, runs } => {
            let runs = runs
                .iter()
                .map(|r| {
                    let (label, dir) = r.split_once('=').ok_or_else(|| {
                        Error::InvalidInput(format!("{r}: give a run as LABEL=FOLDER"))
                    })?;
                    Ok(plot::Run {
                        label: label.to_string(),
                        records: log::read(&Path::new(dir).join(LOG_FILE))?,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            plot::curves(&runs, &out)?;
            eprintln!("curves of {} runs written to {}", runs.len(), out.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Prints an evaluation as JSON, or as a title line and its table.
fn print_eval(json: bool, report: &impl serde::Serialize, title: &str, table: &str) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(report).expect("plain data")
        );
    } else {
        println!("{title}");
        print!("{table}");
    }
}

/// The device a `--device` flag or a run file's `device` names (`auto`, `cpu`, `gpu`), by the
/// runtime's one policy (`auto` follows `CAPPA_DEVICE`, then takes a hardware GPU or the CPU).
fn open_device(name: &str) -> Result<Device> {
    Device::open(name.parse()?, &cappa::DeviceOptions::default())
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::Io(format!("{}: {e}", path.display())))
}

fn grads(
    model: &Path,
    inputs: &Path,
    mode: GradMode,
    out: &Path,
    ls: f32,
    device: &str,
) -> Result<()> {
    let be = open_device(device)?;
    let model = Model::new(&f32_checkpoint(model)?, be)?;
    let bytes = read(inputs)?;
    let file = SafetensorsFile::parse(&bytes)?;
    let images = file.f32("images")?;
    let (shape, ids) = file.i32("tokens")?;
    if shape.len() != 2 {
        return Err(Error::InputShape {
            what: "tokens".into(),
            expected: vec![0, 0],
            found: shape,
        });
    }
    let tokens = Tokens::from_i32(&ids, shape[0], shape[1])?;
    let b = tokens.batch();
    let (modes, key) = match mode {
        GradMode::Cap => (vec![Mode::Cap; b], "cap"),
        GradMode::Pa => (vec![Mode::Pa; b], "pa"),
        GradMode::Mixed => {
            let (s, pa) = file.i32("mixed_is_pa")?;
            if s != [b] {
                return Err(Error::InputShape {
                    what: "mixed_is_pa".into(),
                    expected: vec![b],
                    found: s,
                });
            }
            let modes = pa
                .iter()
                .map(|&p| if p != 0 { Mode::Pa } else { Mode::Cap })
                .collect();
            (modes, "mixed")
        }
    };
    let (loss, grads) = model.loss_and_grads(&images, &tokens, &modes, None, ls)?;
    let mut tensors = vec![OwnedTensor::f32(
        &format!("loss_{key}"),
        &HostTensor::new(&[1], vec![loss.mean])?,
    )];
    let params = model.params();
    for p in &params {
        let g = grads.download(model.backend(), p)?;
        tensors.push(OwnedTensor::f32(&format!("grad_{key}/{}", p.name), &g));
    }
    write_atomic_with(out, &serialize(&tensors, &[])?, &|| Ok(()))?;
    eprintln!(
        "loss_{key} {:.6} and {} gradients written to {}",
        loss.mean,
        params.len(),
        out.display()
    );
    Ok(())
}

/// Resolves `p` against the run file's folder.
fn rel(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

fn tokenizer_from(section: &TokenizerSection, base: &Path, config: &Config) -> Result<Tokenizer> {
    let tok = match (&section.sentencepiece, &section.words, section.shapes) {
        (Some(sp), None, false) => {
            Tokenizer::sentencepiece(&read(&rel(base, sp))?, section.lowercase)?
        }
        (None, Some(w), false) => {
            let path = rel(base, w);
            let text = String::from_utf8(read(&path)?)
                .map_err(|_| Error::Tokenizer(format!("{} is not UTF-8", path.display())))?;
            let words = text.lines().map(str::to_string).collect();
            Tokenizer::words(words, SpecialIds::from_config(config), section.lowercase)?
        }
        (None, None, true) => Tokenizer::words(
            shapes::vocabulary(),
            SpecialIds::from_config(config),
            section.lowercase,
        )?,
        _ => {
            return Err(Error::Config(
                "[tokenizer] needs exactly one of `sentencepiece`, `words`, `shapes = true`".into(),
            ))
        }
    };
    tok.check_config(config)?;
    Ok(tok)
}

fn train(path: &Path, resume: bool, device: Option<String>) -> Result<ExitCode> {
    let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let text = String::from_utf8(read(path)?)
        .map_err(|_| Error::Config(format!("{} is not UTF-8", path.display())))?;
    let file: RunFile =
        toml::from_str(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
    let be = open_device(device.as_deref().unwrap_or(&file.device))?;
    let out = rel(&base, &file.out);
    let mut trainer = if resume {
        let ckpt = out.join(CHECKPOINT_FILE);
        if !ckpt.is_file() {
            return Err(Error::Io(format!(
                "{}: no checkpoint to resume from",
                ckpt.display()
            )));
        }
        Trainer::resume(be, &ckpt, file.run.clone())?
    } else {
        let model = match file.model.get("init") {
            Some(toml::Value::String(init)) if file.model.len() == 1 => {
                Model::new(&f32_checkpoint(&rel(&base, Path::new(init)))?, be)?
            }
            Some(_) => {
                return Err(Error::Config(
                    "[model] takes either `init = \"model file\"` alone or a config".into(),
                ))
            }
            None => {
                let json = serde_json::to_string(&file.model)
                    .map_err(|e| Error::Config(format!("[model]: {e}")))?;
                let config = Config::from_json(&json)?;
                Model::from_source(&config, &InitParams::new(file.run.seed), be)?
            }
        };
        let model = match &file.tokenizer {
            Some(section) => {
                let tokenizer = tokenizer_from(section, &base, model.config())?;
                model.with_tokenizer(tokenizer)?
            }
            None => model,
        };
        Trainer::new(model, file.run.clone())?
    };
    let config = trainer.config().clone();
    let tokenizer = trainer.model().tokenizer().cloned().ok_or_else(|| {
        Error::Config("the model has no tokenizer: give one in [tokenizer]".into())
    })?;
    let prep = Prep {
        image_size: config.image_size,
        max_len: config.max_len,
        eos_id: config.eos_id,
        pad_id: config.pad_id,
        tokenizer: Arc::new(tokenizer),
    };
    let d = &file.data;
    let (train_set, valid_set) = match (&d.train, d.shapes) {
        (Some(t), None) => (
            Dataset::open(&rel(&base, t))?,
            d.valid
                .as_ref()
                .map(|v| Dataset::open(&rel(&base, v)))
                .transpose()?,
        ),
        (None, Some(n)) => {
            let world = ShapesWorld {
                canonical_order: d.shapes_canonical,
                ..ShapesWorld::new(d.shapes_seed)
            };
            (
                Dataset::shapes(&world, Split::Train, n, config.image_size),
                d.shapes_valid
                    .map(|n| Dataset::shapes(&world, Split::Validation, n, config.image_size)),
            )
        }
        _ => {
            return Err(Error::Config(
                "[data] needs exactly one of `train` (a file or folder) and `shapes`".into(),
            ))
        }
    };
    for w in train_set
        .warnings
        .iter()
        .chain(valid_set.iter().flat_map(|v| &v.warnings))
    {
        eprintln!("skipped: {w}");
    }
    let run_cfg = trainer.run_config().clone();
    let mut loader = Loader::new(
        Arc::new(train_set),
        prep.clone(),
        LoaderOptions {
            batch_size: run_cfg.batch_size,
            seed: run_cfg.seed,
            shuffle: true,
            start: trainer.cursor(),
            one_pass: false,
            workers: d.workers,
            prefetch: d.prefetch,
        },
    )?;
    let valid_set = valid_set.map(Arc::new);
    let valid = valid_set.as_ref().map(|dataset| ValidationData {
        dataset,
        prep: &prep,
    });

    // Evaluations of each checkpoint on the shapes world's test split, when training on it.
    let evaluate = (d.shapes.is_some() && d.shapes_eval > 0)
        .then(|| (ShapesWorld::new(d.shapes_seed), d.shapes_eval));
    std::fs::create_dir_all(&out).map_err(|e| Error::Io(format!("{}: {e}", out.display())))?;
    let mut log = RunLog::open(&out.join(LOG_FILE))?;

    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
        .map_err(|e| Error::Backend(format!("cannot catch Ctrl-C: {e}")))?;

    let terminal = std::io::stderr().is_terminal();
    let pb = ProgressBar::with_draw_target(
        Some(run_cfg.steps),
        if terminal {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    pb.set_style(
        ProgressStyle::with_template(
            "{bar:30} {pos}/{len} steps  loss {msg}  {per_sec}  ETA {eta}",
        )
        .expect("valid template"),
    );
    pb.set_position(trainer.step());
    pb.reset_eta();
    let say = |pb: &ProgressBar, line: String| {
        if terminal {
            pb.println(line);
        } else {
            eprintln!("{line}");
        }
    };
    eprintln!(
        "training {} ({} parameters) on {} from step {}",
        config.name,
        trainer
            .model()
            .params()
            .iter()
            .map(|p| p.shape.iter().product::<usize>())
            .sum::<usize>(),
        trainer.backend().name(),
        trainer.step()
    );
    let outcome = run(
        &mut trainer,
        &mut loader,
        valid,
        &out,
        &stop,
        &mut |event, model| match event {
            Event::Step(s) => {
                pb.set_position(s.step);
                pb.set_message(format!("{:.4}", s.loss));
                log.write(serde_json::json!({
                    "step": s.step, "loss": s.loss, "grad_norm": s.grad_norm,
                    "pa_examples": s.pa_examples,
                }));
            }
            Event::Validation { step, losses } => {
                log.write(serde_json::json!({
                    "step": step, "valid_cap": losses.cap, "valid_pa": losses.pa,
                }));
                say(
                    &pb,
                    match losses.pa {
                        Some(pa) => format!(
                            "step {step}: validation loss cap {:.4}, pa {pa:.4} ({} examples)",
                            losses.cap, losses.examples
                        ),
                        None => format!(
                            "step {step}: validation loss cap {:.4} ({} examples)",
                            losses.cap, losses.examples
                        ),
                    },
                )
            }
            Event::Checkpoint { step, path } => {
                say(&pb, format!("step {step}: checkpoint {}", path.display()));
                if let Some((world, n)) = &evaluate {
                    match shapes_report(model, world, *n) {
                        Ok(report) => {
                            say(
                                &pb,
                                format!(
                                    "step {step}: evaluation on {n} + {n} test scenes\n{}",
                                    report.table()
                                ),
                            );
                            log.write(serde_json::json!({ "step": step, "eval": report }));
                        }
                        Err(e) => say(&pb, format!("step {step}: evaluation failed: {e}")),
                    }
                }
            }
            Event::Skipped(w) => say(&pb, format!("skipped: {w}")),
        },
    )?;
    pb.finish_and_clear();
    match outcome {
        Outcome::Finished => {
            eprintln!("done: {} steps, model in {}", trainer.step(), out.display());
            Ok(ExitCode::SUCCESS)
        }
        Outcome::Interrupted => {
            eprintln!(
                "interrupted after step {}; checkpoint written, continue with --resume",
                trainer.step()
            );
            Ok(ExitCode::from(130))
        }
    }
}

/// Every shapes-world evaluation of the model being trained, with `n` test scenes of each kind.
fn shapes_report<B: TrainBackend>(
    model: &Model<B>,
    world: &ShapesWorld,
    n: usize,
) -> Result<Report> {
    let tokenizer = model
        .tokenizer()
        .ok_or_else(|| Error::Config(format!("{}: no tokenizer", model.config().name)))?;
    eval::report(model, tokenizer, world, n, eval::PROBE_SHOTS)
}

/// The model file at `path` with every tensor as f32 (training updates f32 parameters).
fn f32_checkpoint(path: &Path) -> Result<Checkpoint<'static>> {
    let ckpt = Checkpoint::load(path)?;
    Checkpoint::from_vec(ckpt.to_single_file(Some(DType::F32))?)
}

/// Writes `count` scenes of `split` as `scene-<index>.png` (`size` pixels) and `captions.jsonl`.
fn write_scenes(
    out: &Path,
    count: usize,
    size: usize,
    split: Split,
    seed: u64,
    start: u64,
) -> Result<()> {
    if size == 0 || size > 4096 {
        return Err(Error::InvalidInput(format!(
            "--size {size}: give 1 to 4096 pixels"
        )));
    }
    let io = |p: &Path, e: &dyn std::fmt::Display| Error::Io(format!("{}: {e}", p.display()));
    std::fs::create_dir_all(out).map_err(|e| io(out, &e))?;
    let world = ShapesWorld::new(seed);
    let mut lines = String::new();
    for i in start..start + count as u64 {
        let scene = world.scene(split, i);
        let name = format!("scene-{i}.png");
        let path = out.join(&name);
        image::RgbImage::from_raw(size as u32, size as u32, scene.render(size))
            .expect("render gives size × size × 3 bytes")
            .save(&path)
            .map_err(|e| io(&path, &e))?;
        lines += &serde_json::json!({"image": name, "caption": scene.caption()}).to_string();
        lines.push('\n');
    }
    let path = out.join("captions.jsonl");
    std::fs::write(&path, lines).map_err(|e| io(&path, &e))?;
    eprintln!("{count} scenes written to {}", out.display());
    Ok(())
}

/// Nanoseconds this thread has run on a CPU (Linux: `/proc/thread-self/schedstat`), so that a
/// busy machine's waiting is not counted.
fn thread_cpu_ns() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// Times `batches` batches of `batch` training examples of the shapes world made on one thread
/// (see `Command::DataCost`), and prints the CPU time per batch (and the wall clock's median).
fn data_cost(image_size: usize, batch: usize, batches: usize, seed: u64) -> Result<()> {
    if image_size == 0 || batch == 0 || batches == 0 {
        return Err(Error::InvalidInput(
            "--image-size, --batch and --batches must be positive".into(),
        ));
    }
    let ids = SpecialIds {
        pad: 0,
        eos: 1,
        unk: 2,
    };
    let prep = Prep {
        image_size,
        max_len: 16,
        eos_id: ids.eos,
        pad_id: ids.pad,
        tokenizer: Arc::new(Tokenizer::words(shapes::vocabulary(), ids, true)?),
    };
    let world = ShapesWorld::new(seed);
    let ds = Dataset::shapes(&world, Split::Train, batch * batches, image_size);
    let mut times = Vec::with_capacity(batches);
    let cpu_start = thread_cpu_ns();
    for chunk in ds.examples.chunks(batch) {
        let start = std::time::Instant::now();
        for ex in chunk {
            std::hint::black_box(prep.prepare(ex)?);
        }
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    let cpu = thread_cpu_ns()
        .zip(cpu_start)
        .map(|(end, start)| (end - start) as f64 / 1e6 / batches as f64);
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    println!(
        "{batches} batches of {batch} shapes-world examples for a {image_size}-px model, one \
         thread: {} per batch ({:.1} µs per example); wall clock median {median:.2} ms",
        cpu.map_or("CPU time unknown".to_string(), |c| format!(
            "CPU time {c:.2} ms"
        )),
        1e3 * cpu.unwrap_or(median) / batch as f64
    );
    Ok(())
}
