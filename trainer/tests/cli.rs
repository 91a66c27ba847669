//! The `cappa-train` command: `grads` on the fixture against the reference gradients, and
//! `train` on generated data: a run, `--resume`, and Ctrl-C writing a checkpoint.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use cappa::safetensors_io::SafetensorsFile;
use cappa::{Checkpoint, CpuBackend, Model};
use cappa_tests::{assert_close, fixture_dirs, Fixture, Tol};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cappa-train"))
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("cappa-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn grads_match_the_reference() {
    let dir = &fixture_dirs()[0];
    let fix = Fixture::open(dir);
    let out_dir = temp_dir("grads");
    for mode in ["cap", "pa"] {
        let out = out_dir.join(format!("{mode}.safetensors"));
        let status = bin()
            .args(["grads", "--model"])
            .arg(dir)
            .arg("--inputs")
            .arg(dir.join("inputs.safetensors"))
            .args(["--mode", mode, "--out"])
            .arg(&out)
            .status()
            .unwrap();
        assert!(status.success());
        let bytes = std::fs::read(&out).unwrap();
        let got = SafetensorsFile::parse(&bytes).unwrap();
        let loss = format!("loss_{mode}");
        assert_close(
            &loss,
            &got.f32(&loss).unwrap(),
            &fix.want(&loss),
            Tol::LOSSES,
        );
        let mut n = 0;
        for name in got.names().filter(|n| n.starts_with("grad_")) {
            let want = fix.want(name);
            let max = want.data().iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let abs = if name.ends_with("key/bias") {
                1e-6
            } else {
                1e-4 * max + 1e-6
            };
            assert_close(name, &got.f32(name).unwrap(), &want, Tol { abs, rel: 0.0 });
            n += 1;
        }
        let want_n = fix
            .expected()
            .names()
            .filter(|k| k.starts_with(&format!("grad_{mode}/")))
            .count();
        assert_eq!(n, want_n, "every gradient of the fixture");
    }
    // Bad input is an error message, not a panic.
    let out = bin()
        .args(["grads", "--model"])
        .arg(dir)
        .arg("--inputs")
        .arg(dir.join("config.json"))
        .args(["--mode", "mixed", "--out"])
        .arg(out_dir.join("x.safetensors"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("cappa-train: "));
}

fn run_file(dir: &std::path::Path, steps: u64, checkpoint_every: u64) -> PathBuf {
    let toml = format!(
        r#"out = "run"
device = "cpu"

[model]
image_size = 16
patch_size = 8
enc_width = 16
enc_depth = 1
enc_heads = 2
enc_mlp = 32
dec_depth = 1
vocab_size = 25
max_len = 8
decoder_bias = false
masked_pred_prob = 0.75

[tokenizer]
shapes = true

[data]
shapes = 12
shapes_valid = 4

[run]
steps = {steps}
batch_size = 4
seed = 3
checkpoint_every = {checkpoint_every}
eval_every = 2

[run.optimizer]
lr = 0.003
warmup_steps = 1
"#
    );
    let path = dir.join("run.toml");
    std::fs::write(&path, toml).unwrap();
    path
}

#[test]
fn train_then_resume() {
    let dir = temp_dir("train");
    let cfg = run_file(&dir, 4, 2);
    let out = bin()
        .args(["train", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("step 2: checkpoint") && err.contains("validation loss cap"),
        "{err}"
    );
    let model = Checkpoint::load(dir.join("run/model.safetensors")).unwrap();
    let model = Model::new(&model, CpuBackend::new()).unwrap();
    assert!(
        model.tokenizer().is_some(),
        "the model file carries its tokenizer"
    );
    // Two more steps on top of the four.
    let cfg = run_file(&dir, 6, 2);
    let out = bin()
        .args(["train", "--resume", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("from step 4") && err.contains("done: 6 steps"),
        "{err}"
    );
    // Resuming a run that was never started is an error.
    let out = bin()
        .args(["train", "--resume", "--config"])
        .arg(run_file(&temp_dir("none"), 2, 1))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no checkpoint to resume from"));
}

#[cfg(unix)]
#[test]
fn ctrl_c_writes_a_checkpoint_and_exits_cleanly() {
    let dir = temp_dir("ctrlc");
    let cfg = run_file(&dir, 100_000, 0);
    let mut child = bin()
        .args(["train", "--config"])
        .arg(&cfg)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the handler is installed (the "training ..." line comes after it).
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)) {
            let line = line.unwrap();
            if line.starts_with("training ") {
                let _ = tx.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    rx.recv_timeout(Duration::from_secs(120))
        .expect("training starts");
    std::thread::sleep(Duration::from_millis(300));
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = child.wait().unwrap();
    let err = reader.join().unwrap();
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted after step"), "{err}");
    let ckpt = dir.join("run/checkpoint.safetensors");
    let bytes = std::fs::read(&ckpt).unwrap();
    let file = SafetensorsFile::parse(&bytes).unwrap();
    assert!(file.metadata("cappa.train").is_some());
}

#[test]
fn the_trainer_follows_cappa_device_like_every_other_front_end() {
    // Issue 15: the trainer's `auto` ignored CAPPA_DEVICE. Now one policy (cappa::device)
    // decides for the CLI, the trainer, the C API and the web demo: `auto` (a run file's
    // `device`, or --device) follows the variable, and a value it cannot use is an error naming
    // it.
    let dir = temp_dir("device");
    let cfg = run_file(&dir, 1, 0);
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, text.replace("device = \"cpu\"", "device = \"auto\"")).unwrap();
    let out = bin()
        .env("CAPPA_DEVICE", "quantum")
        .args(["train", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("CAPPA_DEVICE") && err.contains("quantum"),
        "{err}"
    );
    let out = bin()
        .env("CAPPA_DEVICE", "cpu")
        .args(["train", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("cpu"), "the CPU was used: {err}");
}

/// `kill -9` at pseudo-random moments of runs that checkpoint every step (so many kills land
/// in or near a file write), each followed by `--resume`, until the run ends: the final model
/// must be the uninterrupted run's, byte for byte, with no temporary file left. Then a fresh
/// run starts again. Rounds (kills or completions): `CAPPA_KILL9_ROUNDS` (default 12;
/// docs/reliability.md reports a longer run).
#[cfg(unix)]
#[test]
fn kill_9_at_any_moment_then_resume_gives_the_uninterrupted_model() {
    let rounds: u64 = std::env::var("CAPPA_KILL9_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    let steps = 30;
    let reference = temp_dir("kill9-ref");
    let started = std::time::Instant::now();
    let out = bin()
        .args(["train", "--config"])
        .arg(run_file(&reference, steps, 1))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let span = started.elapsed().as_millis() as u64 + 50;
    let want = std::fs::read(reference.join("run/model.safetensors")).unwrap();

    let dir = temp_dir("kill9");
    let cfg = run_file(&dir, steps, 1);
    let run = dir.join("run");
    let start = |resume: bool| {
        let mut cmd = bin();
        cmd.arg("train");
        if resume {
            cmd.arg("--resume");
        }
        cmd.arg("--config")
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd
    };
    // A finished run: the model is the reference's and nothing is left over.
    let check = |what: &str| {
        let got = std::fs::read(run.join("model.safetensors")).unwrap();
        assert!(
            got == want,
            "{what}: the model differs from the uninterrupted run's"
        );
        let temps: Vec<String> = std::fs::read_dir(&run)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".tmp-"))
            .collect();
        assert!(temps.is_empty(), "{what}: left behind: {temps:?}");
    };
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let (mut kills, mut cycles, mut in_cycle, mut in_writes) = (0, 0, 0, 0);
    for _ in 0..rounds {
        let resume = run.join("checkpoint.safetensors").exists();
        let mut child = start(resume).spawn().unwrap();
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        std::thread::sleep(Duration::from_millis(10 + state % span));
        match child.try_wait().unwrap() {
            Some(status) => {
                assert!(status.success(), "{status:?}");
                check(&format!("after {in_cycle} kills"));
                cycles += 1;
                in_cycle = 0;
                std::fs::remove_dir_all(&run).unwrap();
            }
            None => {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                kills += 1;
                in_cycle += 1;
                // A temporary file left behind: the kill landed inside a file write.
                let mid_write = std::fs::read_dir(&run).is_ok_and(|d| {
                    d.flatten()
                        .any(|e| e.file_name().to_string_lossy().contains(".tmp-"))
                });
                in_writes += usize::from(mid_write);
            }
        }
    }
    let resume = run.join("checkpoint.safetensors").exists();
    let out = start(resume).stderr(Stdio::piped()).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    check(&format!("after {in_cycle} kills"));
    eprintln!(
        "kill -9: {kills} kills ({in_writes} inside a file write) over {} runs to the end; every \
         final model identical to the uninterrupted run's, no temporary file left",
        cycles + 1
    );
}
