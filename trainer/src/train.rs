//! The training loop: task mixing, forward and reverse pass, AdamW, periodic validation, and
//! checkpoints that resume exactly.
//!
//! A checkpoint is one `.safetensors` file in the model file format — the parameters under their
//! reference names, the config and tokenizer in `__metadata__` — plus the optimizer state
//! (`optimizer/m/<name>`, `optimizer/v/<name>`) and, under `cappa.train`, the step, the data
//! cursor and the seed (the whole state of the counter-based generators of [`crate::mixing`]
//! and the data order). Beside it the trainer writes the plain model file, loadable by `cappa`.
//! Both are written atomically (temporary file, fsync, rename), the model file first, so that
//! it is never behind the checkpoint; temporary files of killed runs are removed when a run
//! starts or resumes.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use cappa::checkpoint::{metadata, CONFIG_KEY, TOKENIZER_KEY};
use cappa::loss::caption_loss;
use cappa::safetensors_io::{serialize, OwnedTensor, SafetensorsFile};
use cappa::weights::FileParams;
use cappa::{Config, Error, Mode, Model, Result, Tokenizer, TrainBackend};
use serde::{Deserialize, Serialize};

use crate::data::{Batch, Dataset, Loader, LoaderOptions, Prep};
use crate::mixing::{choose_modes, choose_tokens, validate_token_keep, PaSchedule};
use crate::optim::{AdamState, OptimConfig};

/// `__metadata__` key of the training state in a checkpoint.
pub const TRAIN_KEY: &str = "cappa.train";
/// File name of the checkpoint in a run's output folder.
pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";
/// File name of the model file in a run's output folder.
pub const MODEL_FILE: &str = "model.safetensors";

/// Settings of a training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunConfig {
    /// Optimizer updates in the whole run (the schedule spans them).
    pub steps: u64,
    /// Examples per step.
    pub batch_size: usize,
    /// Seed of the initialisation, the data order and the task mixing.
    pub seed: u64,
    /// Write a checkpoint every this many steps (0: only at the end and on Ctrl-C).
    pub checkpoint_every: u64,
    /// Validation loss every this many steps (0: never).
    pub eval_every: u64,
    /// Validation batches per evaluation (0: the whole validation set).
    pub eval_batches: usize,
    /// The optimizer.
    pub optimizer: OptimConfig,
    /// How the Pa probability moves over the run (None: the model's `masked_pred_prob` at
    /// every step).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pa_schedule: Option<PaSchedule>,
    /// Token dropout: the fraction of each image's encoded tokens the decoder's
    /// cross-attention sees in a training step, drawn per example and step (1: all, as in the
    /// paper; see [`crate::mixing::choose_tokens`]).
    pub token_keep: f32,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            steps: 1000,
            batch_size: 32,
            seed: 0,
            checkpoint_every: 500,
            eval_every: 100,
            eval_batches: 0,
            optimizer: OptimConfig::default(),
            pa_schedule: None,
            token_keep: 1.0,
        }
    }
}

/// The training state stored under [`TRAIN_KEY`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Updates done.
    pub step: u64,
    /// Data cursor: examples consumed (good or skipped) since the start of the run.
    pub cursor: u64,
    /// The run's seed. With `step` and `cursor` it is the whole state of the run's random
    /// streams (counter-based: see [`crate::mixing`]).
    pub seed: u64,
    /// The run settings at the time of the checkpoint.
    pub run: RunConfig,
}

/// What one training step did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepStats {
    /// Updates done, this one included.
    pub step: u64,
    /// The batch's training loss (before the update).
    pub loss: f32,
    /// Global gradient norm before clipping.
    pub grad_norm: f32,
    /// Schedule value used.
    pub schedule: f32,
    /// Examples of the batch that took Pa.
    pub pa_examples: usize,
}

/// Validation losses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Validation {
    /// Mean Cap loss over the validation examples.
    pub cap: f32,
    /// Mean Pa loss, for models with a `[MASK]` token.
    pub pa: Option<f32>,
    /// Examples evaluated.
    pub examples: usize,
}

/// A model being trained on one backend: the runtime's own [`Model`], whose parameters the
/// optimizer updates in place.
pub struct Trainer<B: TrainBackend> {
    model: Model<B>,
    opt: AdamState<B>,
    run: RunConfig,
    cursor: u64,
}

impl<B: TrainBackend> Trainer<B> {
    /// Starts training `model` (f32 parameters) from step 0.
    pub fn new(model: Model<B>, run: RunConfig) -> Result<Self> {
        run.optimizer.validate()?;
        if run.batch_size == 0 {
            return Err(Error::Config("batch_size must be positive".into()));
        }
        if let Some(s) = &run.pa_schedule {
            s.validate(model.config().masked_pred_prob)?;
        }
        validate_token_keep(run.token_keep)?;
        let opt = AdamState::new(&model)?;
        Ok(Trainer {
            model,
            opt,
            run,
            cursor: 0,
        })
    }

    /// The model being trained, as it is now.
    pub fn model(&self) -> &Model<B> {
        &self.model
    }

    /// The backend.
    pub fn backend(&self) -> &B {
        self.model.backend()
    }

    /// The model config.
    pub fn config(&self) -> &Config {
        self.model.config()
    }

    /// The run settings.
    pub fn run_config(&self) -> &RunConfig {
        &self.run
    }

    /// Updates done.
    pub fn step(&self) -> u64 {
        self.opt.step
    }

    /// The data cursor (see [`TrainState::cursor`]).
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    /// The Pa probability of the next step: the model's `masked_pred_prob`, or where the run's
    /// `pa_schedule` has it.
    pub fn pa_probability(&self) -> f32 {
        let end = self.model.config().masked_pred_prob;
        match &self.run.pa_schedule {
            Some(s) => s.probability(end, self.opt.step),
            None => end,
        }
    }

    /// One training step on `batch`: each example takes Pa with probability
    /// [`Self::pa_probability`] (seeded by the run's seed and the step), the loss and its
    /// gradient, then one AdamW update.
    pub fn train_step(&mut self, batch: &Batch) -> Result<StepStats> {
        let b = batch.targets.batch();
        let modes = choose_modes(self.run.seed, self.opt.step, b, self.pa_probability());
        let cfg = self.model.config();
        let tokens = cfg.num_patches();
        let kept = choose_tokens(self.run.seed, self.opt.step, b, tokens, self.run.token_keep);
        let (loss, grads) = self.model.loss_and_grads(
            &batch.images,
            &batch.targets,
            &modes,
            kept.as_ref(),
            cfg.label_smoothing,
        )?;
        let upd = self
            .opt
            .update(&self.run.optimizer, &mut self.model, &grads, self.run.steps)?;
        self.cursor = batch.next;
        Ok(StepStats {
            step: self.opt.step,
            loss: loss.mean,
            grad_norm: upd.grad_norm,
            schedule: upd.schedule,
            pa_examples: modes.iter().filter(|m| **m == Mode::Pa).count(),
        })
    }

    /// The mean loss of the captions of `batch`, all in `mode` (no update).
    pub fn eval_loss(&self, batch: &Batch, mode: Mode) -> Result<f32> {
        let m = &self.model;
        let encoded = m.encode(&batch.images)?;
        let logits = m.logits(&encoded, &batch.targets, mode)?;
        Ok(caption_loss(m.backend(), &logits, &batch.targets, m.config().pad_id, 0.0)?.mean)
    }

    /// Validation losses over `dataset` in file order (at most `eval_batches` batches).
    pub fn validate(&self, dataset: &Arc<Dataset>, prep: &Prep) -> Result<Validation> {
        let mut loader = Loader::new(
            dataset.clone(),
            prep.clone(),
            LoaderOptions {
                batch_size: self.run.batch_size,
                seed: 0,
                shuffle: false,
                start: 0,
                one_pass: true,
                workers: 2,
                prefetch: 2,
            },
        )?;
        let pa = self.config().has_mask_token();
        let (mut cap_sum, mut pa_sum, mut n) = (0.0f64, 0.0f64, 0usize);
        let mut batches = 0;
        while let Some(batch) = loader.next_batch() {
            let batch = batch?;
            let b = batch.targets.batch();
            cap_sum += self.eval_loss(&batch, Mode::Cap)? as f64 * b as f64;
            if pa {
                pa_sum += self.eval_loss(&batch, Mode::Pa)? as f64 * b as f64;
            }
            n += b;
            batches += 1;
            if self.run.eval_batches > 0 && batches >= self.run.eval_batches {
                break;
            }
        }
        let n_f = n.max(1) as f64;
        Ok(Validation {
            cap: (cap_sum / n_f) as f32,
            pa: pa.then_some((pa_sum / n_f) as f32),
            examples: n,
        })
    }

    /// The model file of the current parameters.
    pub fn model_file(&self) -> Result<Vec<u8>> {
        self.model.to_file()
    }

    /// The checkpoint file of the current state (see the module docs).
    pub fn checkpoint_file(&self) -> Result<Vec<u8>> {
        let be = self.backend();
        let params = self.model.params();
        let mut tensors = params
            .iter()
            .map(|p| Ok(OwnedTensor::f32(&p.name, &p.download(be)?)))
            .collect::<Result<Vec<_>>>()?;
        for (prefix, moments) in [(MOMENT_M, &self.opt.m), (MOMENT_V, &self.opt.v)] {
            for (p, t) in params.iter().zip(moments) {
                let t = be.download(t)?.reshape(&p.shape)?;
                tensors.push(OwnedTensor::f32(&format!("{prefix}{}", p.name), &t));
            }
        }
        let state = TrainState {
            step: self.opt.step,
            cursor: self.cursor,
            seed: self.run.seed,
            run: self.run.clone(),
        };
        let tokenizer = self.model.tokenizer().map(Tokenizer::to_metadata);
        let mut meta = metadata(self.config(), tokenizer.as_deref());
        meta.push((
            TRAIN_KEY,
            serde_json::to_string(&state).expect("state serialises"),
        ));
        serialize(&tensors, &meta)
    }

    /// Writes `model.safetensors` and then `checkpoint.safetensors` into `dir`, each
    /// atomically. The model goes first, so that a crash between the two leaves the model
    /// ahead of the checkpoint, never behind it: a resumed run redoes the steps since the
    /// checkpoint (exactly) and rewrites both.
    pub fn save(&self, dir: &Path) -> Result<PathBuf> {
        self.save_with(dir, &|| Ok(()))
    }

    /// [`Trainer::save`] with `before_rename` run after each file's data is written and synced
    /// and before it replaces the old file (tests simulate a crash there).
    pub fn save_with(
        &self,
        dir: &Path,
        before_rename: &dyn Fn() -> std::io::Result<()>,
    ) -> Result<PathBuf> {
        std::fs::create_dir_all(dir).map_err(|e| Error::Io(format!("{}: {e}", dir.display())))?;
        let ckpt = dir.join(CHECKPOINT_FILE);
        write_atomic_with(&dir.join(MODEL_FILE), &self.model_file()?, before_rename)?;
        write_atomic_with(&ckpt, &self.checkpoint_file()?, before_rename)?;
        Ok(ckpt)
    }

    /// Continues the run saved in the checkpoint file `path` on `be`, with `run` (its seed is
    /// replaced by the checkpoint's, which the data order and task mixing depend on).
    pub fn resume(be: B, path: &Path, mut run: RunConfig) -> Result<Self> {
        let bytes =
            std::fs::read(path).map_err(|e| Error::Io(format!("{}: {e}", path.display())))?;
        let file = SafetensorsFile::parse(&bytes)?;
        let meta = |k: &str| {
            file.metadata(k).ok_or_else(|| {
                Error::Config(format!("{}: not a checkpoint (no `{k}`)", path.display()))
            })
        };
        let config = Config::from_json(meta(CONFIG_KEY)?)?;
        let state: TrainState = serde_json::from_str(meta(TRAIN_KEY)?)
            .map_err(|e| Error::Config(format!("{}: bad `{TRAIN_KEY}`: {e}", path.display())))?;
        // The parameters load by the model's own names; the moments are the rest of the file.
        let mut model = Model::from_source(&config, &FileParams::new(&file), be)?;
        if let Some(t) = file.metadata(TOKENIZER_KEY) {
            model = model.with_tokenizer(Tokenizer::from_metadata(t)?)?;
        }
        let moments = |prefix: &str| -> Result<Vec<B::Tensor>> {
            let be = model.backend();
            model
                .params()
                .iter()
                .map(|p| {
                    let name = format!("{prefix}{}", p.name);
                    let t = file.f32(&name)?;
                    if t.shape() != p.shape.as_slice() {
                        return Err(Error::ShapeMismatch {
                            name,
                            expected: p.shape.clone(),
                            found: t.shape().to_vec(),
                        });
                    }
                    be.upload(&t.reshape(&be.shape(&p.tensor))?)
                })
                .collect()
        };
        let opt = AdamState {
            m: moments(MOMENT_M)?,
            v: moments(MOMENT_V)?,
            step: state.step,
        };
        run.seed = state.seed;
        let mut t = Trainer::new(model, run)?;
        t.opt = opt;
        t.cursor = state.cursor;
        Ok(t)
    }
}

/// Checkpoint name prefixes of Adam's first and second moments.
const MOMENT_M: &str = "optimizer/m/";
const MOMENT_V: &str = "optimizer/v/";

/// Writes `bytes` to `path` atomically (the runtime's one helper, [`cappa::files`]).
pub use cappa::files::write_atomic_with;

/// Removes the temporary files that runs killed while writing into `dir` left behind
/// (`.checkpoint.safetensors.tmp-<pid>`, `.model.safetensors.tmp-<pid>` of processes that no
/// longer run); returns them.
pub fn remove_stale_temps(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut removed = cappa::files::remove_stale_temps(&dir.join(CHECKPOINT_FILE))?;
    removed.extend(cappa::files::remove_stale_temps(&dir.join(MODEL_FILE))?);
    Ok(removed)
}

/// Something the loop reports.
#[derive(Debug, Clone)]
pub enum Event {
    /// A step finished.
    Step(StepStats),
    /// A validation finished after `step` steps.
    Validation {
        /// Steps done.
        step: u64,
        /// The losses.
        losses: Validation,
    },
    /// A checkpoint was written.
    Checkpoint {
        /// Steps done.
        step: u64,
        /// The checkpoint file.
        path: PathBuf,
    },
    /// An example was skipped (bad line, image or caption).
    Skipped(String),
}

/// How [`run`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// All steps done; the final checkpoint is written.
    Finished,
    /// `stop` was raised (Ctrl-C); a checkpoint of the last finished step is written.
    Interrupted,
}

/// The validation data of a run.
pub struct ValidationData<'a> {
    /// The examples.
    pub dataset: &'a Arc<Dataset>,
    /// How they become inputs.
    pub prep: &'a Prep,
}

/// Trains until `run.steps` steps are done or `stop` is raised, reporting every step,
/// validation and checkpoint to `on_event` (with the model as it is then, e.g. to evaluate it),
/// writing checkpoints into `out_dir`.
pub fn run<B: TrainBackend>(
    trainer: &mut Trainer<B>,
    train: &mut Loader,
    valid: Option<ValidationData<'_>>,
    out_dir: &Path,
    stop: &AtomicBool,
    on_event: &mut dyn FnMut(Event, &Model<B>),
) -> Result<Outcome> {
    let run = trainer.run.clone();
    remove_stale_temps(out_dir)?;
    let mut saved_at = None;
    while trainer.step() < run.steps {
        if stop.load(Ordering::SeqCst) {
            if saved_at != Some(trainer.step()) {
                let path = trainer.save(out_dir)?;
                let step = trainer.step();
                on_event(Event::Checkpoint { step, path }, trainer.model());
            }
            return Ok(Outcome::Interrupted);
        }
        let batch = train
            .next_batch()
            .ok_or_else(|| Error::Backend("the data loader stopped".into()))??;
        for w in &batch.warnings {
            on_event(Event::Skipped(w.clone()), trainer.model());
        }
        let stats = trainer.train_step(&batch)?;
        on_event(Event::Step(stats), trainer.model());
        let s = trainer.step();
        if let Some(v) = &valid {
            if run.eval_every > 0 && (s.is_multiple_of(run.eval_every) || s == run.steps) {
                let losses = trainer.validate(v.dataset, v.prep)?;
                on_event(Event::Validation { step: s, losses }, trainer.model());
            }
        }
        if (run.checkpoint_every > 0 && s.is_multiple_of(run.checkpoint_every)) || s == run.steps {
            let path = trainer.save(out_dir)?;
            saved_at = Some(s);
            on_event(Event::Checkpoint { step: s, path }, trainer.model());
        }
    }
    // A run resumed at its last step (a crash while the final files were written) writes
    // them again, so the model file is the checkpoint's.
    if saved_at != Some(trainer.step()) {
        let path = trainer.save(out_dir)?;
        let step = trainer.step();
        on_event(Event::Checkpoint { step, path }, trainer.model());
    }
    Ok(Outcome::Finished)
}
