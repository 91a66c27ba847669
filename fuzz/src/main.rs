//! `cappa-fuzz`: a small mutational fuzzer for cappa's input paths, on stable Rust.
//!
//! Each target (`src/targets.rs`) takes arbitrary bytes. A run starts from the target's seed
//! corpus (`fuzz/corpus/<target>/`, committed), runs every seed as it is, then inputs made by
//! stacking one to eight mutations on a seed: bit flips, random and "interesting" bytes and
//! integers, insertions, deletions, duplicated ranges, splices of two seeds, dictionary tokens,
//! and — for the text formats — whole decimal numbers replaced by interesting ones (how a config
//! field grows from 16 to 4096). Model files are mutated mostly in their JSON header.
//!
//! The inputs run in a worker process, so that what would kill a host kills only the worker and
//! is recorded:
//!
//! * a **panic** (exit status 101), or any other signal (a stack overflow, a segfault);
//! * an **abort**: the worker's allocator refuses any single allocation over 1.25 GiB and more
//!   than 3 GiB live, so an unbounded allocation aborts as it would on a small machine (fallible
//!   allocations see an error, as they should);
//! * a **timeout**: an input running longer than `--timeout` seconds (default 10).
//!
//! Before each input the worker writes it to a file; when the worker dies the parent saves that
//! input under `fuzz/artifacts/<target>/` and starts a new worker after it. Inputs are a pure
//! function of `(seed, iteration)`, so a run is reproducible.
//!
//! ```text
//! cappa-fuzz list
//! cappa-fuzz run TARGET|all [--execs N] [--seconds S] [--seed N] [--timeout S] [--json FILE]
//! cappa-fuzz replay TARGET FILE...
//! cappa-fuzz seeds        # (re)writes fuzz/corpus/ (see src/seeds.rs)
//! ```

#[allow(dead_code)]
#[path = "../../cli/src/decode.rs"]
mod decode;
#[allow(dead_code)]
#[path = "../../cli/src/npy.rs"]
mod npy;
#[allow(dead_code)]
#[path = "../../cli/src/npz.rs"]
mod npz;
mod seeds;
mod targets;

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use targets::{Target, TARGETS};

// ---- memory limits ---------------------------------------------------------------------------

/// Largest single allocation an input may make.
const MAX_ONE: usize = 1280 << 20;
/// Most memory an input may hold at once.
const MAX_LIVE: usize = 3 << 30;

static LIVE: AtomicUsize = AtomicUsize::new(0);

/// The system allocator, refusing what is over the limits (a null pointer: an infallible
/// allocation then aborts the worker, a fallible one reports an error).
struct Limited;

impl Limited {
    fn admit(&self, size: usize) -> bool {
        size <= MAX_ONE && LIVE.load(Ordering::Relaxed).saturating_add(size) <= MAX_LIVE
    }
}

// SAFETY: every call is forwarded to the system allocator unchanged, or refused with null.
unsafe impl GlobalAlloc for Limited {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !self.admit(layout.size()) {
            return std::ptr::null_mut();
        }
        let p = System.alloc(layout);
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !self.admit(layout.size()) {
            return std::ptr::null_mut();
        }
        let p = System.alloc_zeroed(layout);
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > layout.size() && !self.admit(new_size - layout.size()) || new_size > MAX_ONE {
            return std::ptr::null_mut();
        }
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() {
            LIVE.fetch_add(new_size, Ordering::Relaxed);
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Limited = Limited;

// ---- inputs ------------------------------------------------------------------------------------

/// SplitMix64: small, fast, and good enough to choose mutations.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

const INTERESTING: [u64; 22] = [
    0,
    1,
    2,
    3,
    4,
    7,
    8,
    16,
    64,
    127,
    128,
    255,
    256,
    1024,
    4096,
    65535,
    65536,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    0x7fff_ffff_ffff_ffff,
    u64::MAX,
];

const DECIMALS: [&str; 24] = [
    "0",
    "1",
    "2",
    "3",
    "4",
    "7",
    "8",
    "16",
    "64",
    "255",
    "256",
    "1024",
    "4096",
    "16384",
    "65536",
    "1048576",
    "2147483647",
    "4294967296",
    "9007199254740993",
    "99999999999999999999",
    "-1",
    "1e308",
    "1e-320",
    "0.5",
];

/// A position in `data`, inside the target's hot region most of the time.
fn position(rng: &mut Rng, len: usize, hot: Option<(usize, usize)>) -> usize {
    if len == 0 {
        return 0;
    }
    match hot {
        Some((a, b)) if b > a && rng.chance(85) => a + rng.below(b - a),
        _ => rng.below(len),
    }
}

/// One mutation of `data`.
fn mutate(data: &mut Vec<u8>, rng: &mut Rng, t: &Target, corpus: &[Vec<u8>]) {
    let hot = (t.hot)(data);
    let len = data.len();
    if rng.chance(t.numbers) {
        if rng.chance(70) {
            if let Some(m) = mutate_json(data, rng) {
                *data = m;
                return;
            }
        }
        replace_number(data, rng, hot);
        return;
    }
    match rng.below(13) {
        0 if len > 0 => {
            let i = position(rng, len, hot);
            data[i] ^= 1 << rng.below(8);
        }
        1 if len > 0 => {
            let i = position(rng, len, hot);
            data[i] = rng.next() as u8;
        }
        2 => {
            let i = position(rng, len, hot).min(len);
            let n = 1 + rng.below(16);
            let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
            data.splice(i..i, bytes);
        }
        3 if len > 0 => {
            let i = position(rng, len, hot);
            let n = 1 + rng.below(64.min(len - i));
            data.drain(i..i + n);
        }
        4 if len > 1 => {
            let from = rng.below(len);
            let n = 1 + rng.below(64.min(len - from));
            let chunk = data[from..from + n].to_vec();
            let to = position(rng, len, hot);
            data.splice(to..to, chunk);
        }
        5 if len > 0 => {
            let v = INTERESTING[rng.below(INTERESTING.len())];
            let width = [1, 2, 4, 8][rng.below(4)];
            let bytes = if rng.chance(50) {
                v.to_le_bytes()
            } else {
                v.to_be_bytes()
            };
            let bytes = if rng.chance(50) {
                &bytes[..width]
            } else {
                &bytes[8 - width..]
            };
            let i = position(rng, len, hot);
            let end = (i + width).min(len);
            data[i..end].copy_from_slice(&bytes[..end - i]);
        }
        6 if len > 0 => {
            let i = position(rng, len, hot);
            let delta = 1 + rng.below(35) as u8;
            data[i] = if rng.chance(50) {
                data[i].wrapping_add(delta)
            } else {
                data[i].wrapping_sub(delta)
            };
        }
        7 | 8 => replace_number(data, rng, hot),
        9 => {
            let word = t.dictionary[rng.below(t.dictionary.len())];
            let i = position(rng, len, hot).min(len);
            if rng.chance(50) {
                data.splice(i..i, word.iter().copied());
            } else {
                let end = (i + word.len()).min(len);
                data[i..end].copy_from_slice(&word[..end - i]);
            }
        }
        10 if !corpus.is_empty() => {
            let other = &corpus[rng.below(corpus.len())];
            let cut = rng.below(len + 1);
            let from = rng.below(other.len() + 1);
            data.truncate(cut);
            data.extend_from_slice(&other[from..]);
        }
        11 if len > 0 => {
            let cut = position(rng, len, hot);
            data.truncate(cut);
        }
        _ if !corpus.is_empty() && len > 0 => {
            let other = &corpus[rng.below(corpus.len())];
            let i = rng.below(len);
            let n = 1 + rng.below(256);
            let end = (i + n).min(len).min(other.len());
            if end > i {
                data[i..end].copy_from_slice(&other[i..end]);
            }
        }
        _ => {}
    }
}

/// A structure-aware mutation of JSON text: one value somewhere in it (JSON held in a string,
/// as the config inside a model's metadata, included) replaced by an interesting one, or a key
/// removed; `None` when the text is not JSON.
fn mutate_json(text: &[u8], rng: &mut Rng) -> Option<Vec<u8>> {
    let mut v: serde_json::Value = serde_json::from_slice(text).ok()?;
    mutate_value(&mut v, rng, 0);
    serde_json::to_vec(&v).ok()
}

fn interesting_value(rng: &mut Rng) -> serde_json::Value {
    use serde_json::json;
    match rng.below(10) {
        0 => json!(null),
        1 => json!(rng.chance(50)),
        2 => json!(""),
        3 => json!([]),
        4 => json!({}),
        5 => json!(-1),
        6 => json!(0.5),
        7 => json!(1e300),
        8 => json!("sincos2d"),
        _ => json!(INTERESTING[rng.below(INTERESTING.len())]),
    }
}

fn mutate_value(v: &mut serde_json::Value, rng: &mut Rng, depth: usize) {
    use serde_json::Value;
    match v {
        Value::Object(map) if !map.is_empty() && depth < 8 => {
            let keys: Vec<String> = map.keys().cloned().collect();
            // In a model file's header, the metadata (config, tokenizer) most of the time:
            // the tensor entries are dozens of keys beside it.
            let key = match map.contains_key("__metadata__") && rng.chance(75) {
                true => &"__metadata__".to_string(),
                false => &keys[rng.below(keys.len())],
            };
            match rng.below(10) {
                0 => {
                    map.remove(key);
                }
                1 => {
                    map.insert(format!("{key}_"), interesting_value(rng));
                }
                _ => mutate_value(map.get_mut(key).unwrap(), rng, depth + 1),
            }
        }
        Value::Array(items) if !items.is_empty() && depth < 8 => match rng.below(8) {
            0 => {
                items.pop();
            }
            1 => items.push(interesting_value(rng)),
            _ => {
                let i = rng.below(items.len());
                mutate_value(&mut items[i], rng, depth + 1)
            }
        },
        Value::String(text) if rng.chance(80) => {
            // JSON inside a string (a model's `cappa.config`, `cappa.tokenizer`).
            if let Ok(mut inner) = serde_json::from_str::<Value>(text) {
                if inner.is_object() || inner.is_array() {
                    mutate_value(&mut inner, rng, depth + 1);
                    *text = inner.to_string();
                    return;
                }
            }
            *v = interesting_value(rng);
        }
        Value::Number(n) if rng.chance(70) => {
            let x = n.as_u64().unwrap_or(4);
            let d = DECIMALS[rng.below(DECIMALS.len())];
            *v = match rng.below(4) {
                0 => serde_json::json!(x.saturating_mul(2 + rng.below(1000) as u64)),
                1 => serde_json::json!(x.saturating_sub(1 + rng.below(3) as u64)),
                _ => serde_json::from_str(d).unwrap_or(serde_json::json!(0)),
            };
        }
        _ => *v = interesting_value(rng),
    }
}

/// Replaces a run of ASCII digits (a JSON number, a shape) by an interesting decimal.
fn replace_number(data: &mut Vec<u8>, rng: &mut Rng, hot: Option<(usize, usize)>) {
    let (a, b) = hot.unwrap_or((0, data.len()));
    let region = &data[a..b.min(data.len())];
    let starts: Vec<usize> = (0..region.len())
        .filter(|&i| region[i].is_ascii_digit() && (i == 0 || !region[i - 1].is_ascii_digit()))
        .collect();
    if starts.is_empty() {
        return;
    }
    let s = a + starts[rng.below(starts.len())];
    let mut e = s;
    while e < data.len() && data[e].is_ascii_digit() {
        e += 1;
    }
    let with = DECIMALS[rng.below(DECIMALS.len())].as_bytes().to_vec();
    data.splice(s..e, with);
}

/// The input of iteration `i`: the seeds as they are first, then mutated seeds.
fn input(seed: u64, i: u64, t: &Target, corpus: &[Vec<u8>]) -> Vec<u8> {
    if (i as usize) < corpus.len() {
        return corpus[i as usize].clone();
    }
    let mut rng = Rng::new(seed ^ i.wrapping_mul(0xD134_2543_DE82_EF95));
    let mut data = corpus[rng.below(corpus.len())].clone();
    let n = 1 + rng.below(4) + if rng.chance(20) { rng.below(4) } else { 0 };
    // A model file's JSON header is mutated on its own most of the time, and the file put back
    // together with the header's new length (else almost every change would only break the
    // length field).
    if let (Some((_, end)), true) = ((t.hot)(&data), rng.chance(85)) {
        let mut header = data[8..end].to_vec();
        let tail = data[end..].to_vec();
        // Mostly one change that keeps the JSON valid (else the parser is all that runs).
        match rng
            .chance(60)
            .then(|| mutate_json(&header, &mut rng))
            .flatten()
        {
            Some(m) => header = m,
            None => {
                for _ in 0..n {
                    mutate(&mut header, &mut rng, t, corpus);
                }
            }
        }
        data = (header.len() as u64).to_le_bytes().to_vec();
        data.extend_from_slice(&header);
        data.extend_from_slice(&tail);
    } else {
        for _ in 0..n {
            mutate(&mut data, &mut rng, t, corpus);
        }
    }
    // Keep inputs small enough to stay fast (seeds are at most a few hundred KiB).
    data.truncate(1 << 20);
    data
}

fn corpus_dir(t: &Target) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(t.name)
}

fn load_corpus(t: &Target) -> Vec<Vec<u8>> {
    let dir = corpus_dir(t);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no seeds in {}", dir.display());
    files.iter().map(|f| std::fs::read(f).unwrap()).collect()
}

fn target(name: &str) -> &'static Target {
    TARGETS.iter().find(|t| t.name == name).unwrap_or_else(|| {
        eprintln!(
            "cappa-fuzz: unknown target `{name}` ({})",
            TARGETS
                .iter()
                .map(|t| t.name)
                .collect::<Vec<_>>()
                .join(", ")
        );
        std::process::exit(2)
    })
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

// ---- the worker ----------------------------------------------------------------------------------

/// When the input now running started (ms since the epoch), 0 between inputs.
static STARTED: AtomicU64 = AtomicU64::new(0);

/// Exit status of a worker that hit the timeout.
const TIMEOUT_EXIT: i32 = 3;

fn worker(args: &[String]) {
    let [name, seed, start, count, deadline, current, timeout_ms] = args else {
        panic!("worker arguments: {args:?}");
    };
    let t = target(name);
    let seed: u64 = seed.parse().unwrap();
    let start: u64 = start.parse().unwrap();
    let count: u64 = count.parse().unwrap();
    let deadline: u64 = deadline.parse().unwrap();
    let timeout_ms: u64 = timeout_ms.parse().unwrap();
    let corpus = load_corpus(t);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(current)
        .unwrap();
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_millis(100));
        let s = STARTED.load(Ordering::Relaxed);
        if s != 0 && now_ms().saturating_sub(s) > timeout_ms {
            let _ = writeln!(
                std::io::stderr(),
                "timeout: an input ran over {timeout_ms} ms"
            );
            std::process::exit(TIMEOUT_EXIT);
        }
    });
    let out = std::io::stdout();
    let mut done = 0u64;
    for i in start..start.saturating_add(count) {
        if now_ms() >= deadline {
            break;
        }
        let data = input(seed, i, t, &corpus);
        record(&mut file, i, &data);
        STARTED.store(now_ms().max(1), Ordering::Relaxed);
        (t.run)(&data);
        STARTED.store(0, Ordering::Relaxed);
        done += 1;
        if done.is_multiple_of(5000) {
            let _ = writeln!(out.lock(), "progress {done}");
        }
    }
    let _ = writeln!(out.lock(), "done {done}");
}

/// Writes iteration `i` and its input where the parent finds them if the worker dies.
fn record(file: &mut std::fs::File, i: u64, data: &[u8]) {
    use std::io::{Seek, SeekFrom};
    let _ = file.seek(SeekFrom::Start(0));
    let _ = file.write_all(&i.to_le_bytes());
    let _ = file.write_all(data);
    let _ = file.set_len(8 + data.len() as u64);
}

// ---- the parent ------------------------------------------------------------------------------------

struct Options {
    execs: u64,
    seconds: f64,
    seed: u64,
    timeout: f64,
    json: Option<PathBuf>,
    artifacts: PathBuf,
}

/// What a run of one target found.
struct Outcome {
    target: &'static str,
    execs: u64,
    seconds: f64,
    crashes: Vec<(String, PathBuf, String)>,
}

fn parse_options(args: &[String]) -> (Vec<String>, Options) {
    let mut o = Options {
        execs: 100_000,
        seconds: f64::INFINITY,
        seed: 1,
        timeout: 10.0,
        json: None,
        artifacts: Path::new(env!("CARGO_MANIFEST_DIR")).join("artifacts"),
    };
    let mut names = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || {
            it.next().cloned().unwrap_or_else(|| {
                eprintln!("cappa-fuzz: {a} needs a value");
                std::process::exit(2)
            })
        };
        match a.as_str() {
            "--execs" => o.execs = value().parse().expect("--execs N"),
            "--seconds" => o.seconds = value().parse().expect("--seconds S"),
            "--seed" => o.seed = value().parse().expect("--seed N"),
            "--timeout" => o.timeout = value().parse().expect("--timeout S"),
            "--json" => o.json = Some(value().into()),
            "--artifacts" => o.artifacts = value().into(),
            other => names.push(other.to_string()),
        }
    }
    if names.is_empty() || names == ["all"] {
        names = TARGETS.iter().map(|t| t.name.to_string()).collect();
    }
    (names, o)
}

fn run_target(t: &'static Target, o: &Options) -> Outcome {
    let started = Instant::now();
    let deadline = if o.seconds.is_finite() {
        now_ms() + (o.seconds * 1000.0) as u64
    } else {
        u64::MAX
    };
    let scratch =
        std::env::temp_dir().join(format!("cappa-fuzz-{}-{}", t.name, std::process::id()));
    let mut next = 0u64;
    let mut crashes = Vec::new();
    while next < o.execs && now_ms() < deadline {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["worker", t.name])
            .arg(o.seed.to_string())
            .arg(next.to_string())
            .arg((o.execs - next).to_string())
            .arg(deadline.to_string())
            .arg(&scratch)
            .arg(((o.timeout * 1000.0) as u64).to_string())
            .env("RUST_BACKTRACE", "0")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start a worker");
        let stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let err = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut stderr, &mut s);
            s
        });
        let mut done = None;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if let Some(n) = line.strip_prefix("done ") {
                done = n.parse::<u64>().ok();
            }
        }
        let status = child.wait().unwrap();
        let stderr = err.join().unwrap_or_default();
        match (status.success(), done) {
            (true, Some(n)) => {
                next += n;
                if n == 0 {
                    break;
                }
            }
            _ => {
                let recorded = std::fs::read(&scratch).unwrap_or_default();
                let i = recorded
                    .get(..8)
                    .map_or(next, |b| u64::from_le_bytes(b.try_into().unwrap()));
                let kind = match status.code() {
                    Some(TIMEOUT_EXIT) => "timeout",
                    Some(101) => "panic",
                    Some(_) => "exit",
                    None if stderr.contains("memory allocation") => "oom-abort",
                    None => "signal",
                };
                let dir = o.artifacts.join(t.name);
                std::fs::create_dir_all(&dir).unwrap();
                let file = dir.join(format!("{kind}-seed{}-{i}", o.seed));
                std::fs::write(&file, recorded.get(8..).unwrap_or_default()).unwrap();
                let tail: String = stderr
                    .lines()
                    .filter(|l| !l.trim().is_empty() && !l.starts_with("note:"))
                    .take(3)
                    .collect::<Vec<_>>()
                    .join(" | ");
                eprintln!(
                    "cappa-fuzz: {}: {kind} at input {i} ({}): {tail}",
                    t.name,
                    file.display()
                );
                crashes.push((kind.to_string(), file, tail));
                next = i + 1;
            }
        }
    }
    let _ = std::fs::remove_file(&scratch);
    Outcome {
        target: t.name,
        execs: next,
        seconds: started.elapsed().as_secs_f64(),
        crashes,
    }
}

fn run(args: &[String]) -> ExitCode {
    let (names, o) = parse_options(args);
    eprintln!(
        "cappa-fuzz: seed {}, up to {} inputs per target{}, {} s per input at most",
        o.seed,
        o.execs,
        if o.seconds.is_finite() {
            format!(" or {} s", o.seconds)
        } else {
            String::new()
        },
        o.timeout
    );
    let mut outcomes = Vec::new();
    for name in &names {
        let t = target(name);
        let seeds = load_corpus(t).len();
        eprintln!("cappa-fuzz: {} ({seeds} seeds): {}", t.name, t.about);
        outcomes.push(run_target(t, &o));
    }
    println!(
        "{:<14} {:>11} {:>9} {:>9} {:>8}",
        "target", "executions", "seconds", "execs/s", "findings"
    );
    for r in &outcomes {
        println!(
            "{:<14} {:>11} {:>9.1} {:>9.0} {:>8}",
            r.target,
            r.execs,
            r.seconds,
            r.execs as f64 / r.seconds.max(1e-9),
            r.crashes.len()
        );
    }
    if let Some(path) = &o.json {
        let list: Vec<serde_json::Value> = outcomes
            .iter()
            .map(|r| {
                serde_json::json!({
                    "target": r.target,
                    "executions": r.execs,
                    "seconds": r.seconds,
                    "seed": o.seed,
                    "findings": r.crashes.iter().map(|(k, f, e)| serde_json::json!({
                        "kind": k, "input": f.display().to_string(), "stderr": e,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        std::fs::write(path, serde_json::to_string_pretty(&list).unwrap()).unwrap();
    }
    let findings: usize = outcomes.iter().map(|r| r.crashes.len()).sum();
    let short = outcomes
        .iter()
        .any(|r| r.execs < o.execs && !o.seconds.is_finite());
    if findings > 0 || short {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn replay(args: &[String]) -> ExitCode {
    let Some((name, files)) = args.split_first() else {
        eprintln!("cappa-fuzz replay TARGET FILE...");
        return ExitCode::from(2);
    };
    let t = target(name);
    for f in files {
        let data = std::fs::read(f).unwrap_or_else(|e| panic!("{f}: {e}"));
        eprintln!("cappa-fuzz: {}: {f} ({} bytes)", t.name, data.len());
        (t.run)(&data);
    }
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("worker") => {
            worker(&args[1..]);
            ExitCode::SUCCESS
        }
        Some("run") => run(&args[1..]),
        Some("replay") => replay(&args[1..]),
        Some("seeds") => {
            let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
            seeds::write_all(&root);
            eprintln!("cappa-fuzz: seed corpora written to {}", root.display());
            ExitCode::SUCCESS
        }
        Some("list") => {
            for t in TARGETS {
                println!("{:<14} {}", t.name, t.about);
            }
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!(
                "usage: cappa-fuzz run TARGET|all [--execs N] [--seconds S] [--seed N] \
                 [--timeout S] [--json FILE]\n       cappa-fuzz replay TARGET FILE...\n       \
                 cappa-fuzz list"
            );
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every committed seed (and every saved finding, once fixed, goes there too) runs cleanly.
    #[test]
    fn every_seed_runs() {
        for t in TARGETS {
            for data in load_corpus(t) {
                (t.run)(&data);
            }
        }
    }

    /// Mutated inputs are a function of (seed, iteration), and differ from their seeds.
    #[test]
    fn inputs_are_reproducible() {
        for t in TARGETS {
            let corpus = load_corpus(t);
            let n = corpus.len() as u64;
            assert_eq!(input(7, 0, t, &corpus), corpus[0]);
            let a: Vec<Vec<u8>> = (n..n + 50).map(|i| input(7, i, t, &corpus)).collect();
            let b: Vec<Vec<u8>> = (n..n + 50).map(|i| input(7, i, t, &corpus)).collect();
            assert_eq!(a, b);
            assert!(a.iter().any(|x| !corpus.contains(x)), "{}", t.name);
        }
    }

    /// A short run of every target in-process: no panic (the CI smoke run does more, in
    /// worker processes with the memory and time limits).
    #[test]
    fn a_few_hundred_mutations_per_target() {
        for t in TARGETS {
            let corpus = load_corpus(t);
            for i in 0..300 {
                (t.run)(&input(3, i, t, &corpus));
            }
        }
    }

    /// Enough mutated model files parse, and load, for the model to be exercised at all.
    #[test]
    fn mutated_model_files_often_parse_and_load() {
        let t = target("model");
        let corpus = load_corpus(t);
        let n = corpus.len() as u64;
        let (mut parsed, mut loaded) = (0, 0);
        for i in n..n + 1000 {
            if let Ok(c) = cappa::Checkpoint::from_bytes(&input(9, i, t, &corpus)) {
                parsed += 1;
                loaded += usize::from(cappa::Model::new(&c, cappa::CpuBackend::new()).is_ok());
            }
        }
        assert!(
            parsed > 100 && loaded > 30,
            "{parsed} parse, {loaded} load of 1000"
        );
    }
}
