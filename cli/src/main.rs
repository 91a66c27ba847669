//! `cappa`: the command line of the cappa runtime.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

mod dump;

#[derive(Parser)]
#[command(name = "cappa", version, about = "Run CapPa image-captioning models")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where to run.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum DeviceArg {
    /// A hardware GPU if there is one, else the CPU (or what `CAPPA_DEVICE` says).
    Auto,
    /// The CPU backend.
    Cpu,
    /// The wgpu backend on the best adapter (software adapters such as lavapipe included).
    Gpu,
}

impl DeviceArg {
    /// Opens the device.
    pub fn open(self) -> cappa::Result<cappa::Device> {
        match self {
            DeviceArg::Auto => cappa::Device::best(),
            DeviceArg::Cpu => Ok(cappa::Device::cpu()),
            DeviceArg::Gpu => cappa::Device::gpu(),
        }
    }
}

#[derive(Subcommand)]
enum Command {
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Dump {
            model,
            inputs,
            out,
            device,
        } => dump::run(&model, &inputs, &out, device),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cappa: {e}");
            ExitCode::FAILURE
        }
    }
}
