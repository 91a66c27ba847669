//! Tokenizers: SentencePiece id for id against the reference library (fixtures made by
//! `data/spm/make_fixture.py` with `sentencepiece` 0.2.x; no Python needed here), the word
//! vocabulary, captions, metadata, and malformed input.

use std::path::{Path, PathBuf};

use cappa::tokenizer::{pad_caption, PieceType, SentencePiece, SpecialIds, Vocab};
use cappa::{Checkpoint, Config, Error, Model, Tokenizer};
use serde_json::Value;

fn spm_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/spm")
}

fn model_bytes(name: &str) -> Vec<u8> {
    let path = spm_dir().join(format!("{name}.model"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn model(name: &str) -> SentencePiece {
    SentencePiece::from_bytes(&model_bytes(name)).unwrap()
}

/// One line of a `<name>.jsonl` fixture.
struct Case {
    line: usize,
    /// `None` for decode-only cases.
    text: Option<String>,
    ids: Vec<u32>,
    decoded: String,
}

fn cases(name: &str) -> Vec<Case> {
    let path = spm_dir().join(format!("{name}.jsonl"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .enumerate()
        .map(|(i, l)| {
            let v: Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("line {}: {e}", i + 1));
            Case {
                line: i + 1,
                text: v.get("text").map(|t| t.as_str().expect("text").to_string()),
                ids: v["ids"]
                    .as_array()
                    .expect("ids")
                    .iter()
                    .map(|x| x.as_u64().expect("id") as u32)
                    .collect(),
                decoded: v["decoded"].as_str().expect("decoded").to_string(),
            }
        })
        .collect()
}

fn pieces(sp: &SentencePiece, ids: &[u32]) -> Vec<String> {
    ids.iter()
        .map(|&id| {
            sp.piece(id)
                .map_or_else(|| format!("#{id}?"), |p| p.piece.clone())
        })
        .collect()
}

/// Every case of `<name>.jsonl` encodes and decodes as the library did; the first mismatch is
/// reported with the pieces on both sides. Returns the model and the cases, after checking that
/// there are enough of both kinds.
fn check_against_reference(name: &str, min_encode: usize) -> (SentencePiece, Vec<Case>) {
    let sp = model(name);
    let cases = cases(name);
    let (mut encoded, mut decoded_only) = (0, 0);
    let mut failures = Vec::new();
    for c in &cases {
        if let Some(text) = &c.text {
            encoded += 1;
            let got = sp.encode(text);
            if got != c.ids {
                failures.push(format!(
                    "{name}.jsonl line {}: encode({text:?})\n  normalized {:?}\n  want {:?} {:?}\n  got  {:?} {:?}",
                    c.line,
                    sp.normalize(text),
                    c.ids,
                    pieces(&sp, &c.ids),
                    got,
                    pieces(&sp, &got)
                ));
            }
        } else {
            decoded_only += 1;
        }
        let got = sp.decode(&c.ids);
        if got != c.decoded {
            failures.push(format!(
                "{name}.jsonl line {}: decode({:?} = {:?})\n  want {:?}\n  got  {:?}",
                c.line,
                c.ids,
                pieces(&sp, &c.ids),
                c.decoded,
                got
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases disagree with the reference; first: {}",
        failures.len(),
        cases.len(),
        failures[0]
    );
    assert!(
        encoded >= min_encode && decoded_only >= 100,
        "{name}.jsonl has {encoded} sentences and {decoded_only} decode-only cases"
    );
    (sp, cases)
}

fn has_kind(sp: &SentencePiece, ids: &[u32], kind: PieceType) -> bool {
    ids.iter()
        .any(|&id| sp.piece(id).map(|p| p.kind) == Some(kind))
}

fn case<'a>(cases: &'a [Case], text: &str) -> &'a Case {
    cases
        .iter()
        .find(|c| c.text.as_deref() == Some(text))
        .unwrap_or_else(|| panic!("no fixture case for {text:?}"))
}

#[test]
fn byte_fallback_model_matches_the_reference_library() {
    let (sp, cases) = check_against_reference("bytes", 1000);
    // The fixture exercises what this model is for.
    let encoded = || cases.iter().filter(|c| c.text.is_some());
    assert!(sp.byte_fallback());
    assert!(encoded().any(|c| has_kind(&sp, &c.ids, PieceType::Byte)));
    assert!(encoded().any(|c| has_kind(&sp, &c.ids, PieceType::UserDefined)));
    assert!(!encoded().any(|c| c.ids.contains(&sp.unk_id())));
    assert!(cases
        .iter()
        .any(|c| has_kind(&sp, &c.ids, PieceType::Control)));
    // NFKC: full-width letters and the ideographic space become ASCII.
    assert_eq!(
        case(&cases, "ｈｅｌｌｏ\u{3000}ｗｏｒｌｄ").decoded,
        "hello world"
    );
}

#[test]
fn unk_model_matches_the_reference_library() {
    let (sp, cases) = check_against_reference("unk", 1000);
    assert!(!sp.byte_fallback());
    // A run of unknown characters is one UNK.
    assert_eq!(case(&cases, "😂😂😂").ids, [sp.unk_id()]);
    assert_eq!(case(&cases, "😂😂😂").decoded, " \u{2047} ");
}

#[test]
fn edited_model_matches_the_reference_library() {
    let (sp, cases) = check_against_reference("edited", 250);
    assert!((0..sp.vocab_size() as u32).any(|id| sp.piece(id).unwrap().kind == PieceType::Unused));
    // The denormalization rules turn "ss" back into "ß".
    assert!(cases
        .iter()
        .any(|c| c.decoded.contains('ß') && !c.text.as_deref().unwrap_or("").contains('ß')));
    assert!(cases.iter().any(|c| c.decoded.contains("<?>")));
}

#[test]
fn sentencepiece_accessors() {
    let sp = model("bytes");
    assert_eq!(sp.vocab_size(), 1500);
    assert_eq!(
        (sp.pad_id(), sp.eos_id(), sp.unk_id(), sp.bos_id()),
        (Some(0), Some(1), 2, None)
    );
    assert_eq!(sp.piece(1).unwrap().kind, PieceType::Control);
    assert_eq!(sp.piece(2).unwrap().piece, "<unk>");
    assert_eq!(sp.piece_to_id("<sep>"), 4);
    let byte = sp.piece(sp.piece_to_id("<0x41>")).unwrap();
    assert_eq!(
        (byte.piece.as_str(), byte.kind),
        ("<0x41>", PieceType::Byte)
    );
    assert_eq!(sp.piece_to_id("no such piece"), sp.unk_id());
    assert!(sp.piece(1500).is_none());
    assert_eq!(sp.normalize("  ＡＢＣ  ｄ "), "▁ABC▁d");
    // Ids outside the vocabulary are skipped, not a panic.
    let dog = sp.encode("a dog");
    let mut with_junk = dog.clone();
    with_junk.insert(1, 1500);
    with_junk.push(u32::MAX);
    assert_eq!(sp.decode(&with_junk), sp.decode(&dog));
}

#[test]
fn lowercasing_is_ascii_only_as_in_the_reference() {
    let bytes = model_bytes("bytes");
    let sp = SentencePiece::from_bytes(&bytes).unwrap();
    let lower = Tokenizer::sentencepiece(&bytes, true).unwrap();
    let keep = Tokenizer::sentencepiece(&bytes, false).unwrap();
    assert!(lower.lowercase() && !keep.lowercase());
    assert_eq!(
        lower.encode("A Dog ON the Beach"),
        sp.encode("a dog on the beach")
    );
    assert_eq!(keep.encode("A Dog"), sp.encode("A Dog"));
    assert_ne!(keep.encode("A Dog"), sp.encode("a dog"));
    // tf.strings.lower without an encoding leaves non-ASCII letters alone.
    assert_eq!(lower.encode("ÉCOLE"), sp.encode("École"));
    assert_ne!(lower.encode("ÉCOLE"), sp.encode("école"));
    assert_eq!(lower.vocab_size(), 1500);
}

#[test]
fn captions_have_a_sticky_eos_and_padding() {
    assert_eq!(pad_caption(vec![5, 6], 5, 1, 0), [5, 6, 1, 0, 0]);
    assert_eq!(pad_caption(vec![5, 6, 7], 4, 1, 0), [5, 6, 7, 1]);
    assert_eq!(pad_caption(vec![5, 6, 7, 8, 9], 4, 1, 0), [5, 6, 7, 1]);
    assert_eq!(pad_caption(vec![5, 6], 1, 1, 0), [1]);
    assert_eq!(pad_caption(vec![], 3, 7, 9), [7, 9, 9]);
    assert_eq!(pad_caption(vec![5], 0, 1, 0), Vec::<u32>::new());

    let tok = Tokenizer::sentencepiece(&model_bytes("bytes"), true).unwrap();
    let content = tok.encode("A dog running on the beach near a red boat");
    assert!(content.len() > 6);
    let cut = tok.encode_caption("A dog running on the beach near a red boat", 6, 1, 0);
    assert_eq!(cut[..5], content[..5]);
    assert_eq!(cut[5], 1);
    let padded = tok.encode_caption("a dog", 64, 1, 0);
    assert_eq!(padded.len(), 64);
    assert_eq!(
        padded[..content_len(&tok, "a dog")],
        tok.encode("a dog")[..]
    );
    assert_eq!(padded[content_len(&tok, "a dog")], 1);
    assert!(padded[content_len(&tok, "a dog") + 1..]
        .iter()
        .all(|&t| t == 0));
    assert_eq!(tok.decode(&padded), "a dog");
}

fn content_len(tok: &Tokenizer, text: &str) -> usize {
    tok.encode(text).len()
}

// ---------------------------------------------------------------------------------------------
// Malformed SentencePiece models.

/// A hand-written `ModelProto`, to break one rule at a time.
struct Proto(Vec<u8>);

impl Proto {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push(v as u8 | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }
    fn tag(&mut self, field: u32, wire: u8) {
        self.varint(u64::from(field) << 3 | u64::from(wire));
    }
    fn int(mut self, field: u32, v: i64) -> Self {
        self.tag(field, 0);
        self.varint(v as u64);
        self
    }
    fn float(mut self, field: u32, v: f32) -> Self {
        self.tag(field, 5);
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn bytes(mut self, field: u32, b: &[u8]) -> Self {
        self.tag(field, 2);
        self.varint(b.len() as u64);
        self.0.extend_from_slice(b);
        self
    }
}

fn piece(text: &str, score: f32, kind: i64) -> Vec<u8> {
    Proto(Vec::new())
        .bytes(1, text.as_bytes())
        .float(2, score)
        .int(3, kind)
        .0
}

const NORMAL: i64 = 1;
const UNKNOWN: i64 = 2;
const CONTROL: i64 = 3;
const BYTE: i64 = 6;

/// A valid little model: `<pad>`, `</s>`, `<unk>`, then pieces for "▁ab", "a", "b", "▁".
fn tiny_pieces() -> Vec<Vec<u8>> {
    vec![
        piece("<pad>", 0.0, CONTROL),
        piece("</s>", 0.0, CONTROL),
        piece("<unk>", 0.0, UNKNOWN),
        piece("▁ab", -1.0, NORMAL),
        piece("a", -2.0, NORMAL),
        piece("b", -2.0, NORMAL),
        piece("▁", -3.0, NORMAL),
    ]
}

fn tiny_model(pieces: &[Vec<u8>], trainer: Proto) -> Vec<u8> {
    let mut m = Proto(Vec::new());
    for p in pieces {
        m = m.bytes(1, p);
    }
    let trainer = trainer.int(40, 2).int(41, -1).int(42, 1).int(43, 0);
    m.bytes(2, &trainer.0)
        .bytes(3, &Proto(Vec::new()).bytes(1, b"identity").0)
        .0
}

fn tokenizer_error(bytes: &[u8]) -> String {
    match SentencePiece::from_bytes(bytes) {
        Err(Error::Tokenizer(m)) => m,
        Err(other) => panic!("expected a tokenizer error, got {other:?}"),
        Ok(_) => panic!("a malformed model loaded"),
    }
}

#[test]
fn a_hand_written_model_loads_and_segments() {
    let sp = SentencePiece::from_bytes(&tiny_model(&tiny_pieces(), Proto(Vec::new()))).unwrap();
    assert_eq!(sp.vocab_size(), 7);
    assert_eq!(sp.encode("ab ba"), [3, 6, 5, 4]);
    // Unknown characters: one UNK per run.
    assert_eq!(sp.encode("abxyz"), [3, 2]);
    assert_eq!(sp.decode(&[3, 6, 5, 4, 1, 0]), "ab ba");
    // After text, a leading `▁` is a space again (checked against the library).
    assert_eq!(sp.decode(&[2, 3]), " \u{2047}  ab");
    // Unknown fields (and known ones with another wire type) are skipped, as protobuf does.
    let mut extra = tiny_model(&tiny_pieces(), Proto(Vec::new()));
    extra.extend(
        Proto(Vec::new())
            .int(99, 7)
            .bytes(4, b"\x0a\x00")
            .int(1, 5)
            .0,
    );
    let sp2 = SentencePiece::from_bytes(&extra).unwrap();
    assert_eq!(sp2.encode("ab ba"), sp.encode("ab ba"));
}

#[test]
fn inconsistent_models_are_typed_errors() {
    let t = || Proto(Vec::new());
    let mut dup = tiny_pieces();
    dup.push(piece("a", -1.0, NORMAL));
    let mut two_unk = tiny_pieces();
    two_unk.push(piece("<unk2>", 0.0, UNKNOWN));
    let mut empty = tiny_pieces();
    empty.push(piece("", 0.0, NORMAL));
    let mut byte = tiny_pieces();
    byte.push(piece("<0x41>", 0.0, BYTE));
    let mut bad_byte = tiny_pieces();
    bad_byte.push(piece("<0x4a>", 0.0, BYTE));
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (Vec::new(), "no pieces"),
        (tiny_model(&tiny_pieces()[3..], t()), "no UNKNOWN piece"),
        (tiny_model(&dup, t()), "already defined"),
        (tiny_model(&two_unk, t()), "second UNKNOWN"),
        (tiny_model(&empty, t()), "is empty"),
        (tiny_model(&byte, t()), "byte_fallback is false"),
        (tiny_model(&byte, t().int(35, 1)), "no piece <0x00>"),
        (tiny_model(&bad_byte, t().int(35, 1)), "not of the form"),
        (tiny_model(&tiny_pieces(), t().int(3, 2)), "BPE"),
        (
            Proto(Vec::new())
                .bytes(1, &Proto(Vec::new()).bytes(1, b"\xff").0)
                .0,
            "not UTF-8",
        ),
        (
            {
                let mut m = tiny_model(&tiny_pieces(), t());
                m.extend(
                    Proto(Vec::new())
                        .bytes(3, &Proto(Vec::new()).bytes(2, &[7, 0, 0, 0, 1]).0)
                        .0,
                );
                m
            },
            "precompiled_charsmap",
        ),
    ];
    for (bytes, want) in cases {
        let msg = tokenizer_error(&bytes);
        assert!(msg.contains(want), "expected {want:?} in {msg:?}");
    }
}

#[test]
fn truncated_models_never_panic() {
    let bytes = model_bytes("bytes");
    let mut errors = 0;
    let cuts = (0..bytes.len())
        .step_by(997)
        .chain(0..64)
        .chain(bytes.len() - 64..bytes.len());
    for cut in cuts {
        match SentencePiece::from_bytes(&bytes[..cut]) {
            Err(Error::Tokenizer(_)) => errors += 1,
            Err(other) => panic!("cut {cut}: {other:?}"),
            // A cut exactly between two fields is a shorter valid message; it must still work.
            Ok(sp) => drop(sp.decode(&sp.encode("a dog"))),
        }
    }
    assert!(errors > 300, "{errors}");
    // Inside the normalization table (the bulk of the file): a truncated field.
    let msg = tokenizer_error(&bytes[..bytes.len() - 1000]);
    assert!(msg.contains("truncated"), "{msg}");
}

#[test]
fn corrupted_models_never_panic() {
    let good = model_bytes("unk");
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        // xorshift64: a fixed, reproducible sequence of positions and values.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let (mut loaded, mut refused) = (0, 0);
    for _ in 0..400 {
        let mut bytes = good.clone();
        for _ in 0..1 + next() % 4 {
            let i = (next() % bytes.len() as u64) as usize;
            bytes[i] = next() as u8;
        }
        match SentencePiece::from_bytes(&bytes) {
            Ok(sp) => {
                loaded += 1;
                let ids = sp.encode("A dog, 3 cats 🐶 and ｆｕｌｌ width.");
                let _ = sp.decode(&ids);
                let all: Vec<u32> = (0..sp.vocab_size() as u32).collect();
                let _ = sp.decode(&all);
            }
            Err(Error::Tokenizer(_)) => refused += 1,
            Err(other) => panic!("{other:?}"),
        }
    }
    assert!(
        loaded > 0 && refused > 0,
        "{loaded} loaded, {refused} refused"
    );
}

// ---------------------------------------------------------------------------------------------
// The word vocabulary.

fn words(list: &[&str]) -> Vec<String> {
    list.iter().map(|w| w.to_string()).collect()
}

const IDS: SpecialIds = SpecialIds {
    pad: 0,
    eos: 1,
    unk: 2,
};

fn shapes() -> Tokenizer {
    let list = words(&[
        "<pad>", "</s>", "<unk>", "a", "red", "cube", "on", "the", ".", "café",
    ]);
    Tokenizer::words(list, IDS, true).unwrap()
}

#[test]
fn words_split_on_whitespace_and_ascii_punctuation() {
    let tok = shapes();
    assert_eq!(tok.vocab_size(), 10);
    assert_eq!(tok.encode("a red cube"), [3, 4, 5]);
    assert_eq!(tok.encode("  A\tRED\n\ncube.  "), [3, 4, 5, 8]);
    // Punctuation splits words; punctuation outside the vocabulary is dropped.
    assert_eq!(tok.encode("red-cube, on the cube!"), [4, 5, 6, 7, 5]);
    // Unknown words are UNK; non-ASCII letters belong to words and are not lower-cased.
    assert_eq!(tok.encode("a blue cube"), [3, 2, 5]);
    assert_eq!(tok.encode("café"), [9]);
    assert_eq!(tok.encode("CAFÉ"), [2]);
    assert_eq!(tok.encode(""), Vec::<u32>::new());
    assert_eq!(tok.encode(" ,;! "), Vec::<u32>::new());
    let cased = Tokenizer::words(words(&["<pad>", "</s>", "<unk>", "Red"]), IDS, false).unwrap();
    assert_eq!(cased.encode("Red red"), [3, 2]);
}

#[test]
fn words_decode_skipping_pad_and_eos() {
    let tok = shapes();
    assert_eq!(tok.decode(&[3, 4, 5, 8, 1, 0, 0]), "a red cube .");
    assert_eq!(tok.decode(&[0, 3, 99, 2, 1]), "a <unk>");
    assert_eq!(tok.decode(&[]), "");
    assert_eq!(
        tok.encode_caption("a red cube", 6, 1, 0),
        [3, 4, 5, 1, 0, 0]
    );
}

#[test]
fn bad_word_lists_are_typed_errors() {
    let cases: [(&[&str], SpecialIds, &str); 5] = [
        (&["<pad>", "</s>", "<unk>", ""], IDS, "word 3 is empty"),
        (
            &["<pad>", "</s>", "<unk>", "a b"],
            IDS,
            "contains whitespace",
        ),
        (
            &["<pad>", "</s>", "<unk>", "a", "a"],
            IDS,
            "word 4 \"a\" repeats word 3",
        ),
        (&["<pad>", "</s>"], IDS, "unk id 2"),
        (
            &["<pad>", "</s>", "<unk>"],
            SpecialIds {
                pad: 0,
                eos: 9,
                unk: 2,
            },
            "eos id 9",
        ),
    ];
    for (list, ids, want) in cases {
        match Tokenizer::words(words(list), ids, true) {
            Err(Error::Tokenizer(m)) => assert!(m.contains(want), "expected {want:?} in {m:?}"),
            other => panic!("{list:?}: {other:?}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Metadata and the model file.

#[test]
fn metadata_round_trips() {
    let bytes = model_bytes("bytes");
    let sp_tok = Tokenizer::sentencepiece(&bytes, false).unwrap();
    let json = sp_tok.to_metadata();
    assert!(
        json.starts_with(r#"{"type":"sentencepiece","lowercase":false,"model":""#),
        "{}",
        &json[..60]
    );
    let again = Tokenizer::from_metadata(&json).unwrap();
    assert!(!again.lowercase());
    match again.vocab() {
        Vocab::SentencePiece(sp) => assert_eq!(sp.model_bytes(), &bytes[..]),
        Vocab::Words(_) => panic!("wrong vocabulary type"),
    }
    for c in cases("bytes")
        .iter()
        .filter_map(|c| c.text.as_deref())
        .take(200)
    {
        assert_eq!(again.encode(c), sp_tok.encode(c), "{c:?}");
    }

    let w = shapes();
    let json = w.to_metadata();
    let again = Tokenizer::from_metadata(&json).unwrap();
    assert!(again.lowercase());
    assert_eq!(again.to_metadata(), json);
    assert_eq!(again.encode("A red café."), w.encode("A red café."));

    // `lowercase` defaults to the reference's `true`.
    let minimal =
        r#"{"type":"words","pad_id":0,"eos_id":1,"unk_id":2,"words":["<pad>","</s>","<unk>","a"]}"#;
    let tok = Tokenizer::from_metadata(minimal).unwrap();
    assert!(tok.lowercase());
    assert_eq!(tok.encode("A"), [3]);
    assert_eq!(format!("{tok}"), "word tokenizer, 4 ids, lower-cased");
}

#[test]
fn bad_metadata_is_a_typed_error() {
    let cases = [
        ("not json", "bad tokenizer metadata"),
        (r#"{"type":"bpe","model":""}"#, "bad tokenizer metadata"),
        (
            r#"{"type":"words","words":["a"]}"#,
            "bad tokenizer metadata",
        ),
        (
            r#"{"type":"sentencepiece","model":"not base64!"}"#,
            "invalid base64",
        ),
        (
            r#"{"type":"sentencepiece","model":"AAAA"}"#,
            "malformed SentencePiece model",
        ),
        (
            r#"{"type":"words","pad_id":0,"eos_id":1,"unk_id":5,"words":["a","b"]}"#,
            "unk id 5",
        ),
    ];
    for (json, want) in cases {
        match Tokenizer::from_metadata(json) {
            Err(Error::Tokenizer(m)) => {
                assert!(m.contains(want), "{json}: expected {want:?} in {m:?}")
            }
            other => panic!("{json}: {other:?}"),
        }
    }
}

#[test]
fn the_model_file_carries_its_tokenizer() {
    let config = Config::tiny_for_tests();
    let plain = Model::random_checkpoint(&config, 3).unwrap();
    assert!(plain.load_tokenizer().unwrap().is_none());

    let tok = Tokenizer::words(
        words(&["<pad>", "</s>", "<unk>", "a", "red", "cube"]),
        SpecialIds::from_config(&config),
        true,
    )
    .unwrap();
    let mut ckpt = plain.clone();
    ckpt.set_tokenizer(Some(tok.to_metadata()));
    let file = Checkpoint::from_vec(ckpt.to_single_file(None).unwrap()).unwrap();
    let loaded = file.load_tokenizer().unwrap().expect("a tokenizer");
    assert_eq!(loaded.encode("A red cube"), [3, 4, 5]);

    // A tokenizer that does not fit the config is refused, naming the mismatch.
    let mut wrong = plain.clone();
    let unk3 = SpecialIds {
        unk: 3,
        ..SpecialIds::from_config(&config)
    };
    let tok = Tokenizer::words(words(&["<pad>", "</s>", "<unk>", "?"]), unk3, true).unwrap();
    wrong.set_tokenizer(Some(tok.to_metadata()));
    match wrong.load_tokenizer() {
        Err(Error::Config(m)) => assert!(m.contains("unk_id is 3 but the config's is 2"), "{m}"),
        other => panic!("{other:?}"),
    }
    let big = Tokenizer::sentencepiece(&model_bytes("bytes"), true).unwrap();
    wrong.set_tokenizer(Some(big.to_metadata()));
    match wrong.load_tokenizer() {
        Err(Error::Config(m)) => assert!(
            m.contains("1500 ids but the model's vocab_size is 12"),
            "{m}"
        ),
        other => panic!("{other:?}"),
    }
    let mut fits = config.clone();
    fits.vocab_size = 1500;
    big.check_config(&fits).unwrap();
    fits.eos_id = 3;
    assert!(matches!(big.check_config(&fits), Err(Error::Config(m)) if m.contains("eos_id is 1")));
}
