//! The optimizer and the training loop: one AdamW step equal on CPU and GPU, decay on kernels
//! only, resume equal to an uninterrupted run, a crash between write and rename keeping the old
//! checkpoint, and seeded runs repeating exactly.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use cappa::layers::Grads;
use cappa::tokenizer::SpecialIds;
use cappa::weights::InitParams;
use cappa::{
    Backend, Checkpoint, Config, CpuBackend, HostTensor, Mode, Model, Tokenizer, TrainBackend,
};
use cappa_tests::{assert_close, fixture_dirs, Fixture, Tol};
use cappa_trainer::data::{Dataset, Loader, LoaderOptions, Prep};
use cappa_trainer::mixing::PaSchedule;
use cappa_trainer::optim::{decays, AdamState, OptimConfig};
use cappa_trainer::shapes::{self, ShapesWorld, Split};
use cappa_trainer::train::{run, Outcome, CHECKPOINT_FILE, MODEL_FILE};
use cappa_trainer::{RunConfig, Trainer};

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("cappa-train-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Every parameter of `model` on the host, by name, in parameter order.
fn host_params<B: TrainBackend>(model: &Model<B>) -> Vec<(String, HostTensor)> {
    model
        .params()
        .iter()
        .map(|p| (p.name.clone(), p.download(model.backend()).unwrap()))
        .collect()
}

/// Two AdamW updates from the fixture's parameters with fixed gradients (the fixture's Cap
/// gradient, then its negative halved), clipped, decayed, in warm-up: parameters and moments.
fn two_updates<B: TrainBackend>(be: B) -> Vec<HostTensor> {
    let dir = &fixture_dirs()[0];
    let fix = Fixture::open(dir);
    let ckpt = Checkpoint::load(dir).unwrap();
    let cpu = Model::new(&ckpt, CpuBackend::new()).unwrap();
    let tokens = fix.tokens("tokens");
    let modes = vec![Mode::Cap; tokens.batch()];
    let (_, cpu_grads) = cpu
        .loss_and_grads(&fix.images(), &tokens, &modes, None, 0.0)
        .unwrap();
    let mut model = Model::new(&ckpt, be).unwrap();
    let cfg = OptimConfig {
        lr: 1e-2,
        weight_decay: 1e-2,
        warmup_steps: 3,
        clip_norm: 0.5,
        ..OptimConfig::default()
    };
    let mut opt = AdamState::new(&model).unwrap();
    for scale in [1.0f32, -0.5] {
        let mut g = Grads::default();
        for (p, c) in model.params().into_iter().zip(cpu.params()) {
            let t = cpu.backend().download(cpu_grads.of(c).unwrap()).unwrap();
            let data = t.data().iter().map(|v| v * scale).collect();
            let t = HostTensor::new(t.shape(), data).unwrap();
            g.set(p, model.backend().upload(&t).unwrap());
        }
        opt.update(&cfg, &mut model, &g, 10).unwrap();
    }
    let mut out: Vec<HostTensor> = host_params(&model).into_iter().map(|(_, t)| t).collect();
    for t in opt.m.iter().chain(&opt.v) {
        out.push(model.backend().download(t).unwrap());
    }
    out
}

#[cfg(feature = "gpu")]
#[test]
fn optimizer_steps_are_the_same_on_cpu_and_gpu() {
    let Some(g) = cappa_tests::gpu() else { return };
    let cpu = two_updates(CpuBackend::new());
    let gpu = two_updates(g);
    assert_eq!(cpu.len(), gpu.len());
    let mut worst = 0.0f32;
    for (i, (c, g)) in cpu.iter().zip(&gpu).enumerate() {
        // Same inputs, same f32 operations; the GPU's sqrt and division may differ in the last
        // bit, which Adam's normalisation can scale up to a few units of 1e-7 of a step.
        let max = c.data().iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let tol = Tol {
            abs: 1e-6 * max + 1e-9,
            rel: 0.0,
        };
        assert_close(&format!("tensor {i}"), g, c, tol);
        worst = worst.max(cappa_tests::max_abs_diff(g.data(), c.data()) / max.max(1e-30));
    }
    eprintln!(
        "two AdamW updates, GPU vs CPU: worst difference {worst:.2e} of the tensor's magnitude"
    );
}

#[test]
fn weight_decay_touches_only_kernels() {
    let be = CpuBackend::new();
    let config = Config::tiny_for_tests();
    let mut model = Model::from_source(&config, &InitParams::new(3), be).unwrap();
    let before = host_params(&model);
    // Zero gradients: Adam's direction is 0, so only the decay can move a parameter.
    let mut grads = Grads::default();
    for p in model.params() {
        grads.set(p, be.zeros(&be.shape(&p.tensor)).unwrap());
    }
    let cfg = OptimConfig {
        weight_decay: 0.1,
        ..OptimConfig::default()
    };
    let mut opt = AdamState::new(&model).unwrap();
    let stats = opt.update(&cfg, &mut model, &grads, 4).unwrap();
    assert_eq!(stats.schedule, 1.0);
    let after = host_params(&model);
    let mut kernels = 0;
    for ((name, b), (_, a)) in before.iter().zip(&after) {
        if decays(name) {
            kernels += 1;
            let want: Vec<f32> = b.data().iter().map(|&v| v - 1.0 * (0.1 * v)).collect();
            assert_eq!(
                a.data(),
                want.as_slice(),
                "{name} decays by wd·schedule·param"
            );
        } else {
            assert_eq!(a, b, "{name} must not decay");
        }
    }
    assert!(kernels > 10 && kernels < before.len());
    assert!(decays("decoder/LogitsDense/kernel") && !decays("decoder/LogitsDense/bias"));
    assert!(!decays("decoder/EmbedTargets/embedding") && !decays("encoder/pos_embedding"));
}

/// A tiny model on the procedural shapes data.
fn setup(steps: u64) -> (Config, Arc<Dataset>, Prep, RunConfig) {
    let config = Config {
        vocab_size: shapes::vocabulary().len(),
        max_len: 8,
        ..Config::tiny_for_tests()
    };
    let tok =
        Tokenizer::words(shapes::vocabulary(), SpecialIds::from_config(&config), true).unwrap();
    let prep = Prep {
        image_size: config.image_size,
        max_len: config.max_len,
        eos_id: config.eos_id,
        pad_id: config.pad_id,
        tokenizer: Arc::new(tok),
    };
    let run = RunConfig {
        steps,
        batch_size: 4,
        seed: 5,
        checkpoint_every: 0,
        eval_every: 0,
        eval_batches: 0,
        optimizer: OptimConfig {
            lr: 3e-3,
            warmup_steps: 2,
            ..OptimConfig::default()
        },
        pa_schedule: None,
        token_keep: 1.0,
    };
    (
        config,
        Arc::new(Dataset::shapes(&ShapesWorld::new(1), Split::Train, 10, 16)),
        prep,
        run,
    )
}

fn loader(ds: &Arc<Dataset>, prep: &Prep, run: &RunConfig, start: u64) -> Loader {
    Loader::new(
        ds.clone(),
        prep.clone(),
        LoaderOptions {
            batch_size: run.batch_size,
            seed: run.seed,
            shuffle: true,
            start,
            one_pass: false,
            workers: 2,
            prefetch: 2,
        },
    )
    .unwrap()
}

/// Trains `run.steps` steps (or until step `stop_at`, as Ctrl-C would), returning the losses.
fn train<B: TrainBackend>(
    t: &mut Trainer<B>,
    ds: &Arc<Dataset>,
    prep: &Prep,
    out: &std::path::Path,
    stop_at: Option<u64>,
) -> (Vec<f32>, Outcome) {
    let mut l = loader(ds, prep, t.run_config(), t.cursor());
    let stop = AtomicBool::new(false);
    let mut losses = Vec::new();
    let outcome = run(t, &mut l, None, out, &stop, &mut |e, _| {
        if let cappa_trainer::train::Event::Step(s) = e {
            losses.push(s.loss);
            if Some(s.step) == stop_at {
                stop.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        }
    })
    .unwrap();
    (losses, outcome)
}

fn fresh<B: TrainBackend>(be: B, config: &Config, run: &RunConfig) -> Trainer<B> {
    let model = Model::from_source(config, &InitParams::new(run.seed), be).unwrap();
    Trainer::new(model, run.clone()).unwrap()
}

#[test]
fn a_pa_schedule_sets_each_steps_mix() {
    let (config, ds, prep, mut run_cfg) = setup(4);
    let config = Config {
        masked_pred_prob: 1.0,
        ..config
    };
    // Cap only at step 0, half Pa at step 1 (drawn), all Pa from step 2.
    run_cfg.pa_schedule = Some(PaSchedule {
        start: 0.0,
        ramp_steps: 2,
    });
    let be = CpuBackend::new();
    let mut t = fresh(be, &config, &run_cfg);
    assert_eq!(t.pa_probability(), 0.0);
    let mut l = loader(&ds, &prep, &run_cfg, 0);
    let mut pa = Vec::new();
    for _ in 0..4 {
        let batch = l.next_batch().unwrap().unwrap();
        pa.push(t.train_step(&batch).unwrap().pa_examples);
    }
    assert_eq!((pa[0], pa[2], pa[3]), (0, 4, 4), "{pa:?}");
    assert_eq!(t.pa_probability(), 1.0);

    // A Cap-only model (no [MASK] token) cannot be scheduled into Pa.
    let cap_only = Config {
        masked_pred_prob: 0.0,
        ..config
    };
    let model = Model::from_source(&cap_only, &InitParams::new(1), be).unwrap();
    run_cfg.pa_schedule = Some(PaSchedule {
        start: 0.5,
        ramp_steps: 2,
    });
    assert!(Trainer::new(model, run_cfg).is_err());
}

#[test]
fn resume_continues_exactly() {
    // Token dropout's draws, like the task mixing's, are the seed's and the step's.
    for token_keep in [1.0, 0.5] {
        resume_continues_exactly_with(token_keep);
    }
}

fn resume_continues_exactly_with(token_keep: f32) {
    let (config, ds, prep, mut run_cfg) = setup(8);
    run_cfg.token_keep = token_keep;
    let be = CpuBackend::new();
    let out_a = temp_dir(&format!("resume-a-{token_keep}"));
    let mut a = fresh(be, &config, &run_cfg);
    let (losses_a, outcome) = train(&mut a, &ds, &prep, &out_a, None);
    assert_eq!(outcome, Outcome::Finished);
    assert_eq!(losses_a.len(), 8);

    let out_b = temp_dir(&format!("resume-b-{token_keep}"));
    let mut b = fresh(be, &config, &run_cfg);
    let (first, outcome) = train(&mut b, &ds, &prep, &out_b, Some(4));
    assert_eq!((outcome, first.len()), (Outcome::Interrupted, 4));
    drop(b); // the process dies
    let mut b = Trainer::resume(be, &out_b.join(CHECKPOINT_FILE), run_cfg.clone()).unwrap();
    assert_eq!(b.step(), 4);
    let (rest, outcome) = train(&mut b, &ds, &prep, &out_b, None);
    assert_eq!(outcome, Outcome::Finished);
    let losses_b: Vec<f32> = first.into_iter().chain(rest).collect();
    assert_eq!(losses_a, losses_b, "same losses step by step");
    assert_eq!(host_params(a.model()), host_params(b.model()));
    // The model file beside the checkpoint runs in cappa.
    let model = Checkpoint::load(out_b.join("model.safetensors")).unwrap();
    cappa::Model::new(&model, be).unwrap();
    assert!(
        losses_a[7] < losses_a[0],
        "the loss goes down: {losses_a:?}"
    );
}

#[test]
fn a_crash_between_write_and_rename_keeps_the_old_checkpoint() {
    let (config, ds, prep, run_cfg) = setup(3);
    let be = CpuBackend::new();
    let out = temp_dir("crash");
    let mut t = fresh(be, &config, &run_cfg);
    let mut l = loader(&ds, &prep, &run_cfg, 0);
    t.train_step(&l.next_batch().unwrap().unwrap()).unwrap();
    let path = t.save(&out).unwrap();
    let saved = std::fs::read(&path).unwrap();
    t.train_step(&l.next_batch().unwrap().unwrap()).unwrap();
    let crash = || Err(std::io::Error::other("simulated crash before the rename"));
    assert!(t.save_with(&out, &crash).is_err());
    assert_eq!(
        std::fs::read(&path).unwrap(),
        saved,
        "the old checkpoint is intact"
    );
    let back = Trainer::resume(be, &path, run_cfg.clone()).unwrap();
    assert_eq!(back.step(), 1);
    // No temporary file is left behind, and the next save works.
    let names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.contains(".tmp-")), "{names:?}");
    t.save(&out).unwrap();
    assert_eq!(Trainer::resume(be, &path, run_cfg).unwrap().step(), 2);
}

#[test]
fn a_crash_while_the_final_files_are_written_never_leaves_the_model_behind() {
    // Issue 18: a kill -9 while the final model was written (after the checkpoint had been
    // renamed into place), then --resume, reported success and left model.safetensors one
    // checkpoint behind. Here the crash comes at each of the final save's two renames.
    let (config, ds, prep, mut run_cfg) = setup(4);
    run_cfg.checkpoint_every = 2;
    let be = CpuBackend::new();
    let out_a = temp_dir("final-a");
    let mut a = fresh(be, &config, &run_cfg);
    assert_eq!(train(&mut a, &ds, &prep, &out_a, None).1, Outcome::Finished);
    let want = std::fs::read(out_a.join(MODEL_FILE)).unwrap();
    for crash_at in 0..2 {
        let out = temp_dir(&format!("final-crash-{crash_at}"));
        let mut t = fresh(be, &config, &run_cfg);
        let mut l = loader(&ds, &prep, &run_cfg, 0);
        for _ in 0..2 {
            t.train_step(&l.next_batch().unwrap().unwrap()).unwrap();
        }
        t.save(&out).unwrap();
        for _ in 0..2 {
            t.train_step(&l.next_batch().unwrap().unwrap()).unwrap();
        }
        let renames = std::cell::Cell::new(0);
        let crash = || {
            let n = renames.replace(renames.get() + 1);
            match n == crash_at {
                true => Err(std::io::Error::other("killed")),
                false => Ok(()),
            }
        };
        assert!(t.save_with(&out, &crash).is_err());
        drop(t); // the process dies
        let mut r = Trainer::resume(be, &out.join(CHECKPOINT_FILE), run_cfg.clone()).unwrap();
        assert_eq!(train(&mut r, &ds, &prep, &out, None).1, Outcome::Finished);
        assert!(
            std::fs::read(out.join(MODEL_FILE)).unwrap() == want,
            "a crash at rename {crash_at} of the final save left the model behind"
        );
    }
}

#[test]
fn temporary_files_of_dead_runs_are_removed_when_a_run_starts() {
    // Issue 18: `.checkpoint.safetensors.tmp-<pid>` of killed runs piled up (106 over 65
    // runs; gigabytes for real models).
    let (config, ds, prep, run_cfg) = setup(1);
    let out = temp_dir("stale");
    let dead = [
        ".checkpoint.safetensors.tmp-4000000000",
        ".model.safetensors.tmp-4000000001",
    ];
    // pid 1 runs on every Linux system; `other.tmp-5` is not ours to remove.
    let kept = [".checkpoint.safetensors.tmp-1", "other.safetensors.tmp-5"];
    for f in dead.iter().chain(&kept) {
        std::fs::write(out.join(f), b"partial").unwrap();
    }
    let mut t = fresh(CpuBackend::new(), &config, &run_cfg);
    train(&mut t, &ds, &prep, &out, None);
    for f in dead {
        assert!(!out.join(f).exists(), "{f} is still there");
    }
    assert!(out.join(kept[1]).exists());
    if cfg!(target_os = "linux") {
        assert!(
            out.join(kept[0]).exists(),
            "a live process's file was removed"
        );
    }
}

fn same_seed_same_losses<B: TrainBackend + Clone>(be: B) {
    let (config, ds, prep, run_cfg) = setup(3);
    // One folder per backend: the CPU and GPU versions of this test run at the same time.
    let out = temp_dir(&format!("determinism-{}", be.name().replace(' ', "-")));
    let mut a = fresh(be.clone(), &config, &run_cfg);
    let mut b = fresh(be, &config, &run_cfg);
    let (la, _) = train(&mut a, &ds, &prep, &out, None);
    let (lb, _) = train(&mut b, &ds, &prep, &out, None);
    assert_eq!(la, lb);
    let mut other = run_cfg.clone();
    other.seed = 6;
    let mut c = fresh(a.backend().clone(), &config, &other);
    let (lc, _) = train(&mut c, &ds, &prep, &out, None);
    assert_ne!(la, lc, "another seed, another run");
}

#[test]
fn same_seed_same_losses_cpu() {
    same_seed_same_losses(CpuBackend::new());
}

#[cfg(feature = "gpu")]
#[test]
fn same_seed_same_losses_gpu() {
    if let Some(g) = cappa_tests::gpu() {
        same_seed_same_losses(g);
    }
}

/// A short run on the shapes world lowers the held-out loss clearly: it fails if the reverse
/// pass, the optimizer or the data are broken (a few seconds on the CPU backend).
#[test]
fn a_short_run_on_the_shapes_world_lowers_the_validation_loss() {
    let (config, _, prep, mut run_cfg) = setup(150);
    run_cfg.batch_size = 8;
    let world = ShapesWorld::new(0);
    let train_set = Arc::new(Dataset::shapes(
        &world,
        Split::Train,
        320,
        config.image_size,
    ));
    let valid = Arc::new(Dataset::shapes(
        &world,
        Split::Validation,
        32,
        config.image_size,
    ));
    let be = CpuBackend::new();
    let mut t = fresh(be, &config, &run_cfg);
    let before = t.validate(&valid, &prep).unwrap();
    let (losses, outcome) = train(&mut t, &train_set, &prep, &temp_dir("shapes-run"), None);
    assert_eq!((outcome, losses.len()), (Outcome::Finished, 150));
    let after = t.validate(&valid, &prep).unwrap();
    eprintln!(
        "validation Cap loss {:.3} -> {:.3}, Pa {:?} -> {:?}",
        before.cap, after.cap, before.pa, after.pa
    );
    assert!(
        after.cap < 0.65 * before.cap,
        "validation Cap loss {} -> {}",
        before.cap,
        after.cap
    );
}
