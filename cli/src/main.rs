//! `cappa`: the command line of the cappa runtime.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

// First: its macros (`outln!`, `note!`) are used by the modules below.
#[macro_use]
mod common;

mod bench;
mod caption;
mod convert;
mod decode;
mod dump;
mod info;
mod npy;
mod npz;

#[derive(Parser)]
#[command(name = "cappa", version, about = "Run CapPa image-captioning models")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where to run (the runtime's one policy: `cappa::device`).
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum DeviceArg {
    /// What `CAPPA_DEVICE` says if set; else a hardware GPU if there is one, else the CPU
    /// (software adapters such as lavapipe are passed over: the CPU is faster).
    Auto,
    /// The CPU backend.
    Cpu,
    /// The wgpu backend on the best adapter (software adapters such as lavapipe included).
    Gpu,
}

impl DeviceArg {
    /// The runtime's device kind.
    pub fn kind(self) -> cappa::DeviceKind {
        match self {
            DeviceArg::Auto => cappa::DeviceKind::Auto,
            DeviceArg::Cpu => cappa::DeviceKind::Cpu,
            DeviceArg::Gpu => cappa::DeviceKind::Gpu,
        }
    }

    /// Opens the device.
    pub fn open(self) -> cappa::Result<cappa::Device> {
        cappa::Device::open(self.kind(), &cappa::DeviceOptions::default())
    }
}

#[derive(Subcommand)]
enum Command {
    /// Caption images (default model and greedy decoding unless told otherwise).
    Caption(caption::CaptionArgs),
    /// Zero-shot classification of an image against text labels.
    Classify(caption::ClassifyArgs),
    /// Pooled encoder features of images, to a .safetensors file.
    Embed(caption::EmbedArgs),
    /// What a model file holds: config, parameters, element types, tokenizer, size.
    Info(info::InfoArgs),
    /// How fast a model (or a preset size with random weights) runs on this machine.
    Bench(bench::BenchArgs),
    /// Run every output of the model on given inputs and write them to a safetensors file, named
    /// and shaped as the reference fixtures' expected.safetensors.
    Dump {
        /// A model file (.safetensors with cappa.config) or a folder with params.safetensors +
        /// config.json.
        #[arg(long)]
        model: PathBuf,
        /// Inputs: `images` [B,H,W,3] f32 in the model's value range, `tokens` [B,L] i32, and
        /// optionally `zeroshot_candidates` [K,L] i32.
        #[arg(long)]
        inputs: PathBuf,
        /// Output safetensors file.
        #[arg(long)]
        out: PathBuf,
        /// Device.
        #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
        device: DeviceArg,
    },
    /// Convert a big_vision checkpoint (.npz) to a cappa model (.safetensors), or back.
    Convert(Box<convert::ConvertArgs>),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Caption(a) => caption::caption(&a),
        Command::Classify(a) => caption::classify(&a),
        Command::Embed(a) => caption::embed(&a),
        Command::Info(a) => info::info(&a),
        Command::Bench(a) => bench::bench(&a),
        Command::Dump {
            model,
            inputs,
            out,
            device,
        } => dump::run(&model, &inputs, &out, device),
        Command::Convert(args) => convert::run(&args),
    };
    let result = result.and_then(|()| common::flush_stdout());
    // A reader that closed our output (`cappa caption ... | head -1`) wants no more: stop
    // quietly, as a program killed by SIGPIPE would.
    if common::stdout_closed() {
        return ExitCode::SUCCESS;
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            note!("cappa: {e}");
            ExitCode::FAILURE
        }
    }
}
