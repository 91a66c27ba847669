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
    /// The best device this build has (the CPU backend in this build).
    Auto,
    /// The CPU backend.
    Cpu,
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
