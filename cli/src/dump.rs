//! `cappa dump`: every output of a model on given inputs, for comparing cappa with another
//! implementation tensor by tensor.

use std::path::Path;

use cappa::checkpoint::write_atomic;
use cappa::safetensors_io::{serialize, OwnedTensor, SafetensorsFile};
use cappa::{Backend, Checkpoint, Error, Greedy, HostTensor, Mode, Model, Result, Tokens};

use crate::DeviceArg;

fn tokens_of(file: &SafetensorsFile<'_>, name: &str) -> Result<Tokens> {
    let (shape, ids) = file.i32(name)?;
    if shape.len() != 2 {
        return Err(Error::InputShape {
            what: name.into(),
            expected: vec![0, 0],
            found: shape,
        });
    }
    Tokens::from_i32(&ids, shape[0], shape[1])
}

fn ids_i32(ids: &[u32]) -> Vec<i32> {
    ids.iter().map(|&t| t as i32).collect()
}

/// Runs the model on `inputs` and writes the outputs to `out`.
pub fn run(model: &Path, inputs: &Path, out: &Path, device: DeviceArg) -> Result<()> {
    let backend = device.open()?;
    let ckpt = Checkpoint::load(model)?;
    let model = Model::new(&ckpt, backend)?;
    let input_bytes = cappa::files::read_model_file(inputs)
        .map_err(|e| e.in_file(inputs.display().to_string()))?;
    let file = SafetensorsFile::parse(&input_bytes)?;
    let images = file.f32("images")?;
    let tokens = tokens_of(&file, "tokens")?;
    let be = model.backend();
    let f32_out = |name: &str, t: &HostTensor| OwnedTensor::f32(name, t);
    let scalar = |x: f32| HostTensor::new(&[1], vec![x]);

    let encoded = model.encode(&images)?;
    let mut outs = vec![
        f32_out("encoder_out", &be.download(&encoded)?),
        f32_out("encoder_gap", &be.download(&model.gap(&encoded)?)?),
        f32_out(
            "logits_cap",
            &be.download(&model.logits(&encoded, &tokens, Mode::Cap)?)?,
        ),
        f32_out(
            "loss_cap",
            &scalar(model.loss(&encoded, &tokens, Mode::Cap, 0.0)?.mean)?,
        ),
    ];
    let greedy = model.greedy(
        &encoded,
        &Greedy {
            stop_at_eos: false,
            ..Greedy::default()
        },
    )?;
    let steps = greedy.tokens.first().map_or(0, Vec::len);
    let flat: Vec<u32> = greedy.tokens.concat();
    outs.push(OwnedTensor::i32(
        "greedy_tokens",
        &[greedy.tokens.len(), steps],
        &ids_i32(&flat),
    ));
    if model.config().has_mask_token() {
        outs.push(f32_out(
            "logits_pa",
            &be.download(&model.logits(&encoded, &tokens, Mode::Pa)?)?,
        ));
        outs.push(f32_out(
            "loss_pa",
            &scalar(model.loss(&encoded, &tokens, Mode::Pa, 0.0)?.mean)?,
        ));
        let par = model.parallel_tokens(&encoded)?;
        outs.push(OwnedTensor::i32(
            "parallel_tokens",
            &[par.batch(), par.len()],
            &ids_i32(par.ids()),
        ));
    } else {
        note!("cappa: Cap-only checkpoint: logits_pa, loss_pa and parallel_tokens are not written");
    }
    if file.get("zeroshot_candidates").is_some() {
        let cands = tokens_of(&file, "zeroshot_candidates")?;
        outs.push(f32_out("zeroshot_scores", &model.score(&encoded, &cands)?));
    }
    let bytes = serialize(&outs, &[("cappa.backend", be.name())])?;
    write_atomic(out, &bytes)?;
    note!(
        "cappa: wrote {} tensors to {} ({})",
        outs.len(),
        out.display(),
        be.name()
    );
    Ok(())
}
