#!/usr/bin/env python3
"""Makes the SentencePiece fixtures for `tests/tokenizer.rs`.

Trains two small unigram models with the reference `sentencepiece` package (0.2.x) on a corpus
generated here, then records what that library does on a varied set of test sentences:

* `bytes.model`: T5 conventions (pad 0, eos 1, unk 2, no bos), default `nmt_nfkc`
  normalization, `byte_fallback=True`, two user-defined pieces and one control piece.
* `unk.model`: no byte fallback and a low character coverage (so unknown characters become the
  UNK id, merged when consecutive), `identity` normalization, no dummy prefix, extra whitespace
  kept.
* `edited.model`: the rarer paths — custom normalization and denormalization rules (small
  precompiled tables), whitespace as a suffix, a custom UNK surface, and some pieces marked
  UNUSED afterwards (as `SetVocabulary` would); the edit needs the `protobuf` package.

For each model, `<name>.jsonl` holds one JSON object a line:
* `{"text": ..., "ids": [...], "decoded": ...}` — `ids = sp.encode(text)`,
  `decoded = sp.decode(ids)`;
* `{"ids": [...], "decoded": ...}` — decode-only cases: random id sequences (control, unknown,
  byte and `▁`-initial pieces included), `decoded = sp.decode(ids)`.

Run from anywhere: `python3 tests/data/spm/make_fixture.py` (needs `pip install sentencepiece`).
The output is deterministic for a given sentencepiece version; CI only reads the files.
"""

import io
import json
import os
import random
import tempfile

import sentencepiece as spm

HERE = os.path.dirname(os.path.abspath(__file__))

NOUNS = """dog cat man woman child girl boy horse bird car bus train plane boat bike table chair
bed sofa pizza cake apple banana sandwich laptop phone clock vase kite umbrella bench street
beach field river mountain kitchen bathroom window door tree flower sign truck giraffe zebra
elephant bear sheep cow surfboard skateboard frisbee ball racket bottle cup bowl knife fork
spoon oven sink toilet book teddy scissors hydrant meter bridge tower building city road sky
cloud snow grass water wave tennis baseball soccer player team crowd market shop restaurant
""".split()
ADJS = """small large big little red blue green yellow white black brown orange pink purple old
young happy sad wooden metal plastic empty full tall short long open closed busy quiet dark
bright sunny rainy snowy colorful striped spotted fluffy shiny dirty clean wet dry
""".split()
VERBS = """sitting standing running walking eating holding riding flying playing looking
lying sleeping jumping parked driving swimming cooking reading talking waiting crossing
""".split()
PREPS = "on in near under next-to behind beside above with by at over".split()
FOREIGN = """café naïve résumé façade jalapeño Zürich São Paulo Ærø smörgåsbord crème brûlée
piñata fiancée déjà vu über straße Müller Ñandú coöperate Škoda Łódź Dvořák Ångström
ελληνικά καλημέρα Москва привет мир добрый день 日本語 東京 猫 犬 中文 北京 你好 世界
ひらがな カタカナ こんにちは 한국어 서울 안녕하세요 مرحبا العالم שלום עולם नमस्ते दुनिया
ภาษาไทย Tiếng Việt
""".split()
EMOJI = ["🐶", "🐱", "🚀", "👍", "👍🏽", "👨‍👩‍👧", "🇫🇷", "❤️", "😂", "🍕", "☕", "✨", "🌍"]
ODD = ["ﬁne", "ﬂower", "x²", "H₂O", "½", "①", "Ⅻ", "㎏", "㍻", "™", "℃", "№", "…", "–", "—",
       "“quoted”", "‘single’", "«guillemets»", "e\u0301", "a\u0308", "ｶﾀｶﾅ", "Å", "Ω", "µ",
       "ℌ", "ǅ", "ﾊﾝｶｸ", "㈱", "⑽", "⒜", "ℵ"]
SPACES = [" ", "  ", "\t", "\n", "\u00a0", "\u3000", "\u2009", "\u200b", "\ufeff", " \t ", "\r\n"]
PUNCT = list(".,;:!?'\"()[]{}<>-_/\\|@#$%^&*+=~`")


def fullwidth(s):
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in s)


def caption(r):
    n1, n2 = r.choice(NOUNS), r.choice(NOUNS)
    a = r.choice(ADJS)
    templates = [
        f"a {a} {n1} {r.choice(VERBS)} {r.choice(PREPS)} the {n2}",
        f"{r.randint(2, 12)} {n1}s {r.choice(VERBS)} {r.choice(PREPS)} a {a} {n2}.",
        f"A {a.capitalize()} {n1} and a {r.choice(ADJS)} {n2}",
        f"the {n1} is {r.choice(VERBS)} {r.choice(PREPS)} {r.choice(ADJS)} {n2}s!",
        f"There are {r.randint(0, 999)} {n1}s, {r.randint(1, 9)} {n2}s; and {r.random():.2f}% {a}.",
        f"\"{n1.upper()}\" ({a}) - {n2}? {r.choice(['yes', 'no', 'maybe'])}",
    ]
    return r.choice(templates)


SYLLABLES = "ka lo mi ren tor vash quil bren dor fen gal hux jin kor lum mar nes pol rik sel tan ur vin wex yor zan".split()


def name(r):
    """A made-up proper name, so the vocabulary has more than the caption words to learn."""
    return "".join(r.choice(SYLLABLES) for _ in range(r.randint(2, 4))).capitalize()


def foreign(r):
    return " ".join(r.choice(FOREIGN) for _ in range(r.randint(1, 5)))


def training_sentence(r):
    k = r.random()
    if k < 0.55:
        return caption(r)
    if k < 0.70:
        return f"{name(r)} and {name(r)} near {caption(r)} in {name(r)}"
    if k < 0.85:
        return caption(r) + " " + foreign(r)
    if k < 0.92:
        return foreign(r)
    if k < 0.96:
        return caption(r) + " " + r.choice(EMOJI)
    return caption(r) + " " + r.choice(ODD)


def random_unicode(r, n):
    ranges = [(0x20, 0x7E), (0x00, 0x1F), (0x7F, 0x9F), (0xA0, 0x24F), (0x370, 0x3FF),
              (0x400, 0x4FF), (0x590, 0x6FF), (0x900, 0x97F), (0xE00, 0xE7F), (0x1100, 0x11FF),
              (0x2000, 0x206F), (0x2070, 0x22FF), (0x2460, 0x24FF), (0x3000, 0x30FF),
              (0x3200, 0x33FF), (0x4E00, 0x9FFF), (0xAC00, 0xD7A3), (0xE000, 0xE0FF),
              (0xF900, 0xFAFF), (0xFB00, 0xFB4F), (0xFE30, 0xFE4F), (0xFF00, 0xFFEF),
              (0xFFF0, 0xFFFF), (0x1D400, 0x1D7FF), (0x1F300, 0x1FAFF), (0x20000, 0x2A6DF),
              (0xE0000, 0xE007F), (0xF0000, 0xF00FF), (0x10FF00, 0x10FFFF)]
    out = []
    for _ in range(n):
        lo, hi = r.choice(ranges)
        out.append(chr(r.randint(lo, hi)))
    return "".join(out)


def test_sentences(r):
    fixed = [
        "", " ", "  ", "\t", "\n", " \t\n ", "\u3000", "a", "A", " a", "a ", "  a  b  ",
        "hello world", "Hello World", "HELLO WORLD", "hello\tworld", "hello\nworld",
        "hello \n\t world", "\u00a0nbsp\u00a0inside\u00a0", "a dog on the beach",
        "A DOG ON THE BEACH.", "   leading spaces", "trailing spaces   ", "   both   ",
        "multiple     internal      spaces", "1234567890", "3.14159 2,718 1e-9 -42 +7 0x1F",
        "$3.50 €4,20 £1 ¥500 ₹10", "12:30pm 2023-06-13 07/08/09",
        "ＦＵＬＬ－ＷＩＤＴＨ ｔｅｘｔ １２３！", "ｈｅｌｌｏ　ｗｏｒｌｄ", "ﬁﬂﬀﬃ", "x² y³ H₂O",
        "½ ¼ ¾ ⅓", "① ② ⑩ ⑳", "Ⅰ Ⅱ Ⅻ ⅻ", "㎏ ㎞ ㍻ ㈱", "e\u0301 a\u0308 n\u0303",
        "café naïve résumé", "CAFÉ NAÏVE RÉSUMÉ", "Zürich straße Müller", "日本語のテキスト",
        "中文句子，标点。", "한국어 문장입니다", "Привет, мир!", "Καλημέρα κόσμε",
        "مرحبا بالعالم", "שלום עולם", "नमस्ते दुनिया", "ภาษาไทย", "🐶🐱🚀", "👍🏽 👨‍👩‍👧 🇫🇷",
        "emoji🍕in🍕words", "😂😂😂", "zero\u200bwidth\u200djoin\ufeffbom", "ctrl\x01\x02\x7fchars",
        "nul\x00byte", "bell\x07 esc\x1b", "\u2028line\u2029para", "soft\u00adhyphen",
        "tab\tsep\tvalues", "cr\rlf\r\n", "quotes “double” ‘single’ «french»",
        "ellipsis… dash– emdash—", "<sep>", "a<sep>b", "<sep> <sep><sep>", "[img] caption",
        "<ctl> is control", "<unk> literal", "</s> literal", "<pad> literal", "<0x41> literal",
        "▁", "▁▁", "a▁b", "▁leading meta", "trailing meta▁", "▁ ▁ ▁", "_underscore_",
        "supercalifragilisticexpialidocious", "pneumonoultramicroscopicsilicovolcanoconiosis",
        "qwxzjkv bvcxz wrtpsdf", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "abababababababababab",
        "the the the the the", "...", "!!!???", "a.b.c.d", "e-mail@example.com",
        "https://example.com/path?q=1&r=2#frag", "C:\\Windows\\path", "snake_case camelCase",
        "\U0001D400\U0001D401\U0001D402 math bold", "\U00020000\U00020001 ext-b",
        "\ue000\ue001 private use", "\U000F0000 plane 15", "\uffff\ufffe nonchars",
        "\ufffd replacement", "Ǆ ǅ ǆ titlecase digraphs", "ℌ ℍ ℕ letterlike",
        "ｶﾀｶﾅ ﾊﾝｶｸ halfwidth", "ﾊﾟﾋﾟﾌﾟ ｶﾞｷﾞｸﾞ ｳﾞ (longest rule wins)", "︰︱ vertical forms", "Å Ω K angstrom ohm kelvin",
    ]
    out = list(fixed)
    while len(out) < 1100:
        k = r.random()
        if k < 0.35:
            s = caption(r)
        elif k < 0.50:
            s = caption(r) + " " + foreign(r)
        elif k < 0.58:
            s = foreign(r) + " " + r.choice(EMOJI) + r.choice(EMOJI)
        elif k < 0.64:
            s = fullwidth(caption(r))
        elif k < 0.70:
            s = caption(r).upper()
        elif k < 0.78:
            s = " ".join(r.choice(ODD + EMOJI + NOUNS) for _ in range(r.randint(1, 6)))
        elif k < 0.86:
            words = caption(r).split(" ")
            s = "".join(w + r.choice(SPACES) for w in words)
            if r.random() < 0.5:
                s = r.choice(SPACES) + s
        elif k < 0.90:
            # Words never seen in training: random letters.
            s = " ".join("".join(r.choice("bcdfghjklmnpqrstvwxzaeiouy") for _ in range(r.randint(3, 14)))
                         for _ in range(r.randint(1, 5)))
        elif k < 0.94:
            s = "".join(r.choice(PUNCT + [" "]) for _ in range(r.randint(1, 12)))
        else:
            s = random_unicode(r, r.randint(1, 12))
        out.append(s)
    return out


def decode_cases(r, sp, n):
    """Random id sequences, biased towards the pieces whose decoding has special rules."""
    size = sp.get_piece_size()
    control = [i for i in range(size) if sp.is_control(i)]
    unknown = [i for i in range(size) if sp.is_unknown(i)]
    byte = [i for i in range(size) if sp.is_byte(i)]
    meta = [i for i in range(size) if sp.id_to_piece(i).startswith("▁")]

    def utf8_run():
        ch = random_unicode(r, 1).encode("utf-8")
        if r.random() < 0.3:
            ch = ch[: r.randint(0, len(ch))] + bytes([r.randint(0x80, 0xFF)])
        return [sp.piece_to_id("<0x%02X>" % b) for b in ch]

    cases = []
    for _ in range(n):
        ids = []
        for _ in range(r.randint(0, 14)):
            k = r.random()
            if k < 0.15 and control:
                ids.append(r.choice(control))
            elif k < 0.25:
                ids.append(r.choice(unknown))
            elif k < 0.45 and byte:
                ids.extend(utf8_run())
            elif k < 0.65:
                ids.append(r.choice(meta))
            else:
                ids.append(r.randrange(size))
        cases.append(ids)
    return cases


def train(name, sentences, **options):
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences),
        model_writer=model,
        model_type="unigram",
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        num_threads=1,
        minloglevel=2,
        **options,
    )
    path = os.path.join(HERE, name + ".model")
    with open(path, "wb") as f:
        f.write(model.getvalue())
    return spm.SentencePieceProcessor(model_file=path)


# Custom rules, `source code points <tab> target code points` in hex (sentencepiece's TSV).
NORMALIZATION_RULES = """41\t61
42\t62
43\t63
DF\t73 73
E6\t61 65
2460\t31
65 301\tE9
3000\t20
9\t20
2581\t5F
"""
DENORMALIZATION_RULES = """73 73\tDF
61 65\tE6
"""


def train_edited(corpus):
    with tempfile.TemporaryDirectory() as tmp:
        norm, denorm = os.path.join(tmp, "norm.tsv"), os.path.join(tmp, "denorm.tsv")
        with open(norm, "w") as f:
            f.write(NORMALIZATION_RULES)
        with open(denorm, "w") as f:
            f.write(DENORMALIZATION_RULES)
        train("edited", corpus, vocab_size=800, byte_fallback=False, character_coverage=0.99,
              normalization_rule_tsv=norm, denormalization_rule_tsv=denorm,
              treat_whitespace_as_suffix=True, unk_surface="<?>",
              user_defined_symbols=["<sep>"])
    from sentencepiece import sentencepiece_model_pb2

    path = os.path.join(HERE, "edited.model")
    proto = sentencepiece_model_pb2.ModelProto()
    with open(path, "rb") as f:
        proto.ParseFromString(f.read())
    normal = [p for p in proto.pieces if p.type == sentencepiece_model_pb2.ModelProto.SentencePiece.NORMAL]
    # Every 13th piece, single characters included: their characters become unknown.
    for p in normal[5::13]:
        p.type = sentencepiece_model_pb2.ModelProto.SentencePiece.UNUSED
    # The rule files' temporary paths would make the model differ run to run.
    proto.normalizer_spec.ClearField("normalization_rule_tsv")
    proto.denormalizer_spec.ClearField("normalization_rule_tsv")
    with open(path, "wb") as f:
        f.write(proto.SerializeToString())
    return spm.SentencePieceProcessor(model_file=path)


def record(name, sp, sentences, r, decode_count=300):
    lines = []
    for text in sentences:
        ids = sp.encode(text)
        lines.append({"text": text, "ids": ids, "decoded": sp.decode(ids)})
    for ids in decode_cases(r, sp, decode_count):
        lines.append({"ids": ids, "decoded": sp.decode(ids)})
    with open(os.path.join(HERE, name + ".jsonl"), "w", encoding="utf-8") as f:
        for line in lines:
            f.write(json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n")


def main():
    r = random.Random(20230613)
    corpus = [training_sentence(r) for _ in range(30000)]
    tests = test_sentences(random.Random(7))

    sp = train("bytes", corpus, vocab_size=1500, byte_fallback=True,
               user_defined_symbols=["<sep>", "[img]"], control_symbols=["<ctl>"])
    record("bytes", sp, tests, random.Random(11))

    sp = train("unk", corpus, vocab_size=1000, byte_fallback=False, character_coverage=0.98,
               normalization_rule_name="identity", add_dummy_prefix=False,
               remove_extra_whitespaces=False)
    record("unk", sp, tests, random.Random(12))

    sp = train_edited(corpus)
    record("edited", sp, tests[:150] + tests[-150:], random.Random(13), decode_count=100)


if __name__ == "__main__":
    main()
